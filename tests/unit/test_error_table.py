"""The one table from domain errors to HTTP answers."""
from __future__ import annotations

import inspect

from exports import errors
from exports.functions.errors import STATUS_AND_CODE, http_error

DOMAIN_ERRORS = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                 if issubclass(cls, errors.ExportsError) and cls.__module__ == errors.__name__]


def test_no_entry_of_the_table_is_shadowed_by_an_earlier_more_general_one():
    kinds = [kind for kind, _, _ in STATUS_AND_CODE]
    for position, kind in enumerate(kinds):
        earlier = [k for k in kinds[:position] if issubclass(kind, k)]
        assert not earlier, f"{kind.__name__} comes after its base {earlier[0].__name__}: it would never apply"


def test_every_error_a_caller_can_act_on_has_an_answer_other_than_500():
    for cls in DOMAIN_ERRORS:
        if cls in (errors.ExportsError, errors.SegmentError, errors.MissingColumns):
            continue  # the base, and errors of the run's own steps, which no request raises
        assert any(issubclass(cls, kind) for kind, _, _ in STATUS_AND_CODE), f"{cls.__name__} would answer 500"


def test_answers_keep_the_message_and_details_and_name_the_record():
    answer = http_error(errors.RunInProgress("r1"))
    assert (answer.status, answer.code, answer.details) == (409, "run_in_progress", {"runId": "r1"})
    assert "r1" in answer.message
    invalid = http_error(errors.Invalid([{"field": "listId", "message": "must be numeric"}]))
    assert (invalid.status, invalid.code, invalid.details) == (400, "validation_failed",
                                                               [{"field": "listId", "message": "must be numeric"}])
    for cls, code in ((errors.ConnectionNotFound, "connection_not_found"), (errors.ExportNotFound, "export_not_found"),
                      (errors.RunNotFound, "run_not_found")):
        answer = http_error(cls("abc"))
        assert (answer.status, answer.code, answer.message) == (404, code, f"{cls.kind} 'abc' does not exist")


def test_throttling_answers_with_retry_after():
    answer = http_error(errors.ActiveCampaignThrottled("slow down", retry_after=7))
    assert (answer.status, answer.code, answer.headers) == (503, "activecampaign_throttled", {"Retry-After": "7"})
