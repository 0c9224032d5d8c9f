"""`python -m tests.bench [--only NAME,...] [--quick]`: run the benchmarks, one JSON line each, then a summary.

    ceiling   worker processes drain one run at 12x ActiveCampaign's limits: ceiling_utilization, throttled
    single    the same with one worker process, one execution at a time and as many as the host runs (where gaps
              come from)
    cli       `python -m exports run` in one process on 100,000 contacts at the same limits: ceiling_utilization
    pipeline  1,000,000 profiles through splitter and workers, limits lifted: wall, CPU, peak memory
    refresh   the same profiles exported, 1% changed, exported again: sent per changed, wall, CPU, memory
    leavers   200,000 profiles exported with leavers unsubscribe, then 5% leave: leaver actions per minute
    baseline  one call per contact against ours, same sample, documented limits
    projection  minutes end to end for the pipeline's 1,000,000 profiles at the documented limits: its measured
              split, then its bulk imports at the ceiling benchmark's utilization

Beside them, a probe of the machine's speed (tests/bench/probe.py) at the start, before the pipeline
and at the end: a hint whether high CPU figures are the hour's (it follows part of the machine's swings).

Exit code 0 when every target is met, 1 otherwise. --quick shrinks every size for a smoke run
(its figures are not the targets' evidence).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time

BENCHMARKS = ("ceiling", "single", "cli", "pipeline", "refresh", "leavers", "baseline", "projection")
TARGETS = {"ceiling_utilization_min": 0.99, "throttled_max": 0, "cli_utilization_min": 0.97,
           "pipeline_profiles": 1_000_000, "imports_per_million_max": 4005, "peak_rss_mb_max": 200,
           "pipeline_cpu_seconds_per_million_max": 60, "refresh_cpu_seconds_per_million_max": 40,
           "projection_minutes_max": 41.0, "refresh_projected_minutes_max": 2.0, "refresh_sent_per_changed_max": 1.05}
DOCUMENTED_BULK_PER_MINUTE = 100
CONTACTS_PER_IMPORT = 250


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def projection(utilization: float, pipeline: dict | None, contacts: int = 1_000_000) -> dict:
    """End to end at the documented limits: the split as the pipeline measured it (nothing is sent before it
    ends), then the pipeline's bulk imports at the measured utilization. Without a pipeline run, the
    fewest imports possible and no split."""
    scale = contacts / pipeline["profiles"] if pipeline else 1.0  # 1.0 but in a --quick run
    imports = round(pipeline["bulk_requests"] * scale) if pipeline else math.ceil(contacts / CONTACTS_PER_IMPORT)
    split_minutes = (pipeline["seconds_to_first_contact_sent"] or 0.0) * scale / 60 if pipeline else 0.0
    sending = imports / (DOCUMENTED_BULK_PER_MINUTE * utilization) if utilization else None
    return {"benchmark": "projection", "contacts": contacts, "bulk_requests": imports,
            "documented_bulk_per_minute": DOCUMENTED_BULK_PER_MINUTE, "ceiling_utilization": utilization,
            "split_minutes": round(split_minutes, 2), "split_measured": pipeline is not None,
            "sending_minutes": round(sending, 1) if sending else None,
            "minutes": round(split_minutes + sending, 1) if sending else None,
            "minutes_at_full_ceiling": math.ceil(contacts / CONTACTS_PER_IMPORT) / DOCUMENTED_BULK_PER_MINUTE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    from tests.bench import baseline, ceiling, cli, leavers, pipeline, probe, refresh

    quick = args.quick
    began = time.monotonic()
    results: dict[str, dict] = {}
    probes = [probe.run()]
    emit(probes[-1])
    if "ceiling" in chosen or "projection" in chosen:
        results["ceiling"] = ceiling.run(rows=40_000 if quick else 330_000)
        emit(results["ceiling"])
    if "single" in chosen:
        for concurrency in (1, ceiling.HOST_EXECUTIONS):
            name = f"single_worker_{concurrency}_execution{'s' if concurrency > 1 else ''}"
            results[name] = ceiling.run(rows=20_000 if quick else 50_000, workers=1, concurrency=concurrency,
                                        blobs=2, name=name)
            emit(results[name])
    if "cli" in chosen:
        results["cli"] = cli.run(rows=20_000 if quick else 100_000)
        emit(results["cli"])
    if "pipeline" in chosen:
        probes.append(probe.run())
        emit(probes[-1])
        results["pipeline"] = pipeline.run(rows=50_000 if quick else 1_000_000, blobs=4 if quick else 10)
        emit(results["pipeline"])
    if "refresh" in chosen:
        results["refresh"] = refresh.run(rows=50_000 if quick else 1_000_000, blobs=4 if quick else 10)
        emit(results["refresh"])
    if "leavers" in chosen:
        results["leavers"] = leavers.run(rows=20_000 if quick else 200_000, blobs=2 if quick else 4)
        emit(results["leavers"])
    if "baseline" in chosen:
        results["baseline"] = baseline.run(rows=1000 if quick else 5000, baseline_seconds=5 if quick else 30)
        emit(results["baseline"])
    if "projection" in chosen:
        results["projection"] = projection(results["ceiling"]["ceiling_utilization"], results.get("pipeline"))
        emit(results["projection"])
    probes.append(probe.run())
    emit(probes[-1])
    results["probes"] = {"alone": [p["cpu_seconds_alone"] for p in probes],
                         "together": [p["cpu_seconds_together"] for p in probes]}
    emit(summary(results, quick, time.monotonic() - began))
    return 0 if all(summary(results, quick, 0)["met"].values()) else 1


def summary(results: dict, quick: bool, seconds: float) -> dict:
    met, figures = {}, {}
    if "probes" in results:
        figures.update(machine_probe_cpu_seconds_alone=results["probes"]["alone"],
                       machine_probe_cpu_seconds_together=results["probes"]["together"])
    if "ceiling" in results:
        ceiling = results["ceiling"]
        figures.update(ceiling_utilization=ceiling["ceiling_utilization"], throttled=ceiling["throttled"],
                       ceiling_bulk_requests=ceiling["bulk_requests"])
        met["ceiling_utilization"] = ceiling["ceiling_utilization"] >= TARGETS["ceiling_utilization_min"]
        met["throttled_zero"] = ceiling["throttled"] <= TARGETS["throttled_max"]
        met["ceiling_run_exact"] = ceiling["status"] == "succeeded" and ceiling["list_exact"]
    if "cli" in results:
        local = results["cli"]
        figures.update(cli_utilization=local["ceiling_utilization"])
        met["cli_utilization"] = (local["ceiling_utilization"] >= TARGETS["cli_utilization_min"]
                                  and local["exit_code"] == 0 and local["list_exact"] and not local["throttled"])
    if "pipeline" in results:
        pipeline = results["pipeline"]
        imports_per_million = round(pipeline["bulk_requests"] * 1_000_000 / pipeline["profiles"], 1)
        figures.update(pipeline_profiles=pipeline["profiles"], pipeline_wall_seconds=pipeline["wall_seconds"],
                       pipeline_imports_per_million=imports_per_million,
                       pipeline_seconds_to_first_contact_sent=pipeline["seconds_to_first_contact_sent"],
                       pipeline_split_on_processes=pipeline["split_on_processes"],
                       pipeline_cpu_seconds_per_million=pipeline["cpu_seconds_per_million_profiles"],
                       pipeline_max_peak_rss_mb=pipeline["max_peak_rss_mb"])
        met["pipeline_imports"] = imports_per_million <= TARGETS["imports_per_million_max"]
        met["pipeline_cpu"] = (pipeline["cpu_seconds_per_million_profiles"]
                               <= TARGETS["pipeline_cpu_seconds_per_million_max"])
        met["pipeline_1m_profiles_exact"] = (pipeline["profiles"] >= TARGETS["pipeline_profiles"]
                                             and pipeline["status"] == "succeeded" and pipeline["list_exact"])
        met["pipeline_memory"] = (pipeline["max_peak_rss_mb"] is not None
                                  and all(p is not None and p < TARGETS["peak_rss_mb_max"]
                                          for p in pipeline["peak_rss_mb_per_process"]))
    if "refresh" in results:
        fresh = results["refresh"]
        figures.update(refresh_sent_per_changed=fresh["sent_per_changed"], refresh_wall_seconds=fresh["wall_seconds"],
                       refresh_projected_minutes=fresh["projected_minutes_at_documented_limits"],
                       refresh_cpu_seconds_per_million=fresh["cpu_seconds_per_million_profiles"],
                       refresh_max_peak_rss_mb=fresh["max_peak_rss_mb"])
        met["refresh_sends_only_changes"] = (fresh["status"] == "succeeded" and fresh["renamed_on_list"] == fresh["changed"]
                                             and fresh["sent_per_changed"] is not None
                                             and fresh["sent_per_changed"] <= TARGETS["refresh_sent_per_changed_max"])
        met["refresh_cpu"] = fresh["cpu_seconds_per_million_profiles"] <= TARGETS["refresh_cpu_seconds_per_million_max"]
        met["refresh_minutes"] = (fresh["projected_minutes_at_documented_limits"]
                                  <= TARGETS["refresh_projected_minutes_max"])
        met["refresh_memory"] = all(p is not None and p < TARGETS["peak_rss_mb_max"]
                                    for p in fresh["peak_rss_mb_per_process"])
    if "leavers" in results:
        gone = results["leavers"]
        figures.update(leaver_actions_per_minute=gone["leaver_actions_per_minute_at_documented_limits"],
                       leaver_ratio_to_ceiling=gone["ratio_to_ceiling"])
        met["leavers_exact"] = gone["status"] == "succeeded" and gone["exact"]
        met["leavers_memory"] = all(p is not None and p < TARGETS["peak_rss_mb_max"]
                                    for p in gone["peak_rss_mb_per_process"])
    if "baseline" in results:
        figures.update(speedup_over_one_call_per_contact=results["baseline"]["speedup"])
    if "projection" in results:
        minutes = results["projection"]["minutes"]
        figures.update(projection_minutes=minutes)
        met["projection"] = minutes is not None and minutes <= TARGETS["projection_minutes_max"]
    return {"benchmark": "summary", "quick": quick, "targets": TARGETS, **figures, "met": met,
            "all_met": all(met.values()), "bench_seconds": round(seconds, 1)}


if __name__ == "__main__":
    sys.exit(main())
