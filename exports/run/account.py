"""Is the run's account there to send to: the key accepted and the list present.

The splitter asks before it reads the segment, so that a wrong hostname, a revoked key or a
deleted list fails the run at once, with the reason, before anything is read; every chunk asks
again before it sends (at most once a minute per run and process).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import ActiveCampaignClient
from exports.model import Run

if TYPE_CHECKING:
    from exports.context import AppContext

LIST_CHECK_SECONDS = 60.0


def check_list(ctx: AppContext, client: ActiveCampaignClient, budget: AccountBudget, run: Run, on_retry=None) -> None:
    """GET the run's list; raises the client's errors (KeyRejected, MissingInAccount, Unreachable, ...).

    Once it passed, this process does not ask again for the same run for LIST_CHECK_SECONDS:
    the GET costs a request of the account's budget and a round trip to ActiveCampaign between
    two chunks, which one worker sending chunk after chunk would otherwise leave idle each time.
    A list deleted meanwhile is still caught: by the next check, at most that long after, or
    sooner by an import answered 404.
    """
    if ctx.accounts.list_recently_checked(run.id, run.list_id):
        return
    # Chunks of the run starting together in this process wait for one check, instead of each taking a request
    # slot at once: a dozen at a run's start left the imports of the chunks already sending no request slot.
    # If that check fails, each asks for itself, at once, as before (an unreachable account is not waited
    # out once per chunk in a row).
    under_way = ctx.accounts.begin_list_check(run.id, run.list_id)
    if under_way is not None:
        under_way.wait()
        if not ctx.accounts.list_recently_checked(run.id, run.list_id):
            _get_list(ctx, client, budget, run, on_retry)
        return
    try:
        _get_list(ctx, client, budget, run, on_retry)
    finally:
        ctx.accounts.end_list_check(run.id, run.list_id)


def _get_list(ctx: AppContext, client: ActiveCampaignClient, budget: AccountBudget, run: Run, on_retry) -> None:
    def get_list():
        budget.before_request()
        return client.get_list(run.list_id)

    ctx.backoff.run(get_list, on_retry=on_retry)
    ctx.accounts.remember_list_checked(run.id, run.list_id, LIST_CHECK_SECONDS)
