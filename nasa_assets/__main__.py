"""`python -m nasa_assets run --pages 1-3`: materialize pages in-process and say where they went.

The same as `dagster asset materialize`, minus the flags: reads `.env`, needs no daemon, and
uses $DAGSTER_HOME when it is set (so the runs show up in `make dev`'s UI).
"""

import argparse
import os
import sys
from pathlib import Path

from dotenv import load_dotenv

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Progress and warnings stay visible; Dagster's per-event DEBUG lines would bury the summary.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _chunks(keys: list[str]) -> list[tuple[str, str]]:
    """Contiguous runs of page keys, each launched as one single-run range."""
    runs, start = [], keys[0]
    for prev, key in zip(keys, keys[1:]):
        if int(key) != int(prev) + 1:
            runs.append((start, prev))
            start = key
    runs.append((start, keys[-1]))
    return runs


def run(pages: str, with_dataset: bool = True) -> int:
    from nasa_assets.partitions import parse_page_range

    try:
        keys = parse_page_range(pages)
        from nasa_assets.definitions import defs  # reads the environment, may reject a setting
    except ValueError as error:
        print(f"nasa_assets: {error}", file=sys.stderr)
        return 2

    import dagster as dg

    from nasa_assets.console import concise_console_logger
    from nasa_assets.jobs import moon_images_job

    home = os.getenv("DAGSTER_HOME")
    if home and not os.path.isdir(home):
        print(f"nasa_assets: DAGSTER_HOME {home} is not a directory; create it or unset it", file=sys.stderr)
        return 2
    # With DAGSTER_HOME the runs land in that instance (and show in `make dev`'s UI).
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    # The code location's assets and resources, with a console logger that leaves stack traces
    # to the event log.
    dataset_job = dg.define_asset_job("moon_dataset_build", selection=["moon_dataset"])
    cli_defs = dg.Definitions(
        assets=defs.assets, resources=defs.resources, jobs=[moon_images_job, dataset_job],
        loggers={"console": concise_console_logger},
    )
    job = cli_defs.resolve_job_def(moon_images_job.name)
    root_uri = defs.resources["storage"].root_uri()
    print(f"nasa_assets: pages {pages} -> {root_uri}")
    ok = True
    for start, end in _chunks(keys):
        tags = {RANGE_START: start, RANGE_END: end}
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET_LOGS
        )
        ok &= _report(result, f"{start}" if start == end else f"{start}...{end}")
    if with_dataset and not ok:
        print("nasa_assets: moon_dataset not rebuilt because a page run failed; fix the cause above "
              "and run again (stored images are not downloaded twice)", file=sys.stderr)
    elif with_dataset:
        # Consolidate every page stored so far: <root>/moon_dataset.parquet and the card.
        result = cli_defs.resolve_job_def(dataset_job.name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_LOGS
        )
        ok &= _report(result, "all pages")
    print(f"nasa_assets: dataset at {root_uri}")
    return 0 if ok else 1


SUMMED = ("row_count", "items", "sampled", "rejected", "stored", "already_stored", "failed", "bytes_stored")


def _report(result, label: str) -> bool:
    from nasa_assets.console import root_cause

    by_asset: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():  # one per page of a range run
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        total = by_asset.setdefault(mat.asset_key.to_user_string(), dict(meta, **dict.fromkeys(SUMMED, 0)))
        for key in SUMMED:
            total[key] += int(meta.get(key) or 0)
    for name, meta in by_asset.items():
        if name == "moon_images":
            print(f"  {label} moon_images: {meta['stored']} stored, {meta['already_stored']} "
                  f"already stored, {meta['failed']} failed, {meta['bytes_stored']} bytes")
        elif name == "sampled_manifest":
            print(f"  {label} sampled_manifest: {meta['sampled']} sampled of {meta['items']}, "
                  f"{meta['rejected']} rejected {meta.get('rejected_reasons') or ''}".rstrip())
        elif name == "moon_dataset":
            print(f"  {label} moon_dataset: {meta['row_count']} images in "
                  f"{meta.get('dataset_uri')}, card {meta.get('card_uri')}")
        else:
            print(f"  {label} {name}: {meta['row_count']} rows")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            problems = evaluation.metadata.get("problems")
            print(f"  {label} check {evaluation.check_name} FAILED: {problems.value if problems else ''}")
    if not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                error = event.event_specific_data.error
                print(f"  {label} step {event.step_key} failed: {root_cause(error) if error else ''}",
                      file=sys.stderr)
    return result.success


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize moon_images_job for a page range")
    run_parser.add_argument("--pages", default="0001", help="1, 1-5, 0001...0005 or 1,3,7 (default 0001)")
    run_parser.add_argument(
        "--no-dataset", action="store_true", help="skip rebuilding moon_dataset and its card afterwards"
    )
    args = parser.parse_args(argv)
    load_dotenv(Path.cwd() / ".env", override=False)
    return run(args.pages, with_dataset=not args.no_dataset)


if __name__ == "__main__":
    sys.exit(main())
