"""`python -m nasa_assets run --pages 1-3`: materialize pages in-process and say where they went.

The same as `dagster asset materialize`, minus the flags: reads `.env`, needs no daemon, and
uses $DAGSTER_HOME when it is set (so the runs show up in `make dev`'s UI). `--dataset mars`
runs another dataset of NASA_DATASETS_FILE instead of moon.
"""

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Progress and warnings stay visible; Dagster's per-event DEBUG lines would bury the summary.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run(pages: str, with_dataset: bool = True, dataset: str = "moon") -> int:
    from nasa_assets.dataset.pages import page_runs, parse_page_range

    try:
        keys = parse_page_range(pages)
        from nasa_assets.defs.allocators import use_lean_allocators

        use_lean_allocators()  # as the code location does; main read .env before
        from nasa_assets.defs.definitions import definitions_from_env
        from nasa_assets.defs.settings import datasets_from_env

        # Built from the environment as it is now (not the code location's `defs`, built once at
        # import), so main() called again in one process sees the settings it was given.
        defs = definitions_from_env(os.environ)  # may reject a setting

        specs = {spec.name: spec for spec in datasets_from_env(os.environ)}
    except ValueError as error:
        print(f"nasa_assets: {error}", file=sys.stderr)
        return 2
    if dataset not in specs:
        print(f"nasa_assets: no dataset {dataset!r}; declared: {', '.join(specs)} (NASA_DATASETS_FILE "
              "declares the datasets besides moon)", file=sys.stderr)
        return 2
    spec = specs[dataset]

    import dagster as dg

    from nasa_assets.defs.console import concise_console_logger

    home = os.getenv("DAGSTER_HOME")
    if home and not os.path.isdir(home):
        print(f"nasa_assets: DAGSTER_HOME {home} is not a directory; create it or unset it", file=sys.stderr)
        return 2
    # With DAGSTER_HOME the runs land in that instance (and show in `make dev`'s UI).
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    # The code location's assets and resources, with a console logger that leaves stack traces
    # to the event log.
    cli_defs = dg.Definitions(
        assets=defs.assets, resources=defs.resources, loggers={"console": concise_console_logger},
        jobs=[job for job in defs.jobs if job.name in (spec.images_job, spec.dataset_job)],
    )
    job = cli_defs.resolve_job_def(spec.images_job)
    store = defs.resources["storage"].store(spec.folder)
    print(f"nasa_assets: pages {pages} -> {store.root_uri}")
    ok, search_failed = True, False
    for start, end in page_runs(keys):  # each contiguous run is one single-run range
        tags = {RANGE_START: start, RANGE_END: end}
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET_LOGS
        )
        ok &= _report(result, f"{start}" if start == end else f"{start}...{end}")
        # A prefixed asset's step is `<prefix>__search_results`.
        search_failed |= any(step.split("__")[-1] == "search_results"
                             for step, _ in _step_failures(result))
    if search_failed:
        print(_search_hint(defs.resources["nasa"].base_url), file=sys.stderr)
    if with_dataset and not ok:
        table = "/".join([*spec.key_prefix, "moon_dataset"])
        print(f"nasa_assets: {table} not rebuilt because a page run failed; fix the cause above "
              "and run again (stored images are not downloaded twice)", file=sys.stderr)
    elif with_dataset:
        # Consolidate every page stored so far: <root>/moon_dataset.parquet and the card.
        result = cli_defs.resolve_job_def(spec.dataset_job).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_LOGS
        )
        ok &= _report(result, "all pages")
    print(_where(store))
    return 0 if ok else 1


def _search_hint(base_url: str) -> str:
    """What to try when the search step failed: the real API needs a network, the double does not."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return f"nasa_assets: the search step failed against {base_url}; is the server there running?"
    return (f"nasa_assets: the search step failed against {base_url}: `make run` needs network access "
            "to NASA's API; `make demo` runs the same pipeline offline against the project's NASA double")


def _where(store) -> str:
    from nasa_assets.dataset.keys import MANIFEST_KEY

    try:
        built = store.exists(MANIFEST_KEY)
    except Exception as error:  # storage unreachable: say so; the runs above reported the cause
        return f"nasa_assets: could not check {store.root_uri} for a dataset ({type(error).__name__})"
    if built:
        return f"nasa_assets: dataset at {store.root_uri}"
    return f"nasa_assets: no dataset at {store.root_uri} yet"


def _step_failures(result) -> list[tuple[str, object]]:
    """(step key, error) of every failed step of a run."""
    return [(event.step_key, event.event_specific_data.error)
            for event in result.all_events if event.event_type_value == "STEP_FAILURE"]


SUMMED = ("row_count", "items", "sampled", "rejected", "stored", "already_stored", "failed", "bytes_stored")


def _report(result, label: str) -> bool:
    from nasa_assets.defs.console import root_cause

    by_asset: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():  # one per page of a range run
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        total = by_asset.setdefault(mat.asset_key, dict(meta, **dict.fromkeys(SUMMED, 0)))
        for key in SUMMED:
            total[key] += int(meta.get(key) or 0)
    for key, meta in by_asset.items():
        # Another dataset's assets have the same names under its prefix: `mars/moon_images`.
        name, shown = key.path[-1], key.to_user_string()
        if name == "moon_images":
            print(f"  {label} {shown}: {meta['stored']} stored, {meta['already_stored']} "
                  f"already stored, {meta['failed']} failed, {meta['bytes_stored']} bytes")
        elif name == "sampled_manifest":
            print(f"  {label} {shown}: {meta['sampled']} sampled of {meta['items']}, "
                  f"{meta['rejected']} rejected {meta.get('rejected_reasons') or ''}".rstrip())
        elif name == "moon_dataset_card":
            continue  # its URI is on the moon_dataset line
        elif name == "moon_dataset":
            print(f"  {label} {shown}: {meta['row_count']} images in "
                  f"{meta.get('dataset_uri')}, card {meta.get('card_uri')}")
        elif name == "moon_webdataset":
            done = "written" if meta.get("rebuilt") else "unchanged"
            print(f"  {label} {shown}: {meta['samples']} samples in {meta['shards']} shards "
                  f"({done}), index {meta.get('index_uri')}")
        else:
            print(f"  {label} {shown}: {meta['row_count']} rows")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            problems = evaluation.metadata.get("problems")
            print(f"  {label} check {evaluation.check_name} FAILED: {problems.value if problems else ''}")
    for step, error in _step_failures(result):
        print(f"  {label} step {step} failed: {root_cause(error) if error else ''}", file=sys.stderr)
    return result.success


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize moon_images_job for a page range")
    run_parser.add_argument("--pages", default="0001", help="1, 1-5, 0001...0005 or 1,3,7 (default 0001)")
    run_parser.add_argument(
        "--dataset", default="moon", help="which dataset of NASA_DATASETS_FILE to run (default moon)"
    )
    run_parser.add_argument(
        "--no-dataset", action="store_true", help="skip rebuilding moon_dataset, its card and its WebDataset export afterwards"
    )
    args = parser.parse_args(argv)
    # Before run() imports the code location, whose allocator defaults then see .env's values.
    load_dotenv(Path.cwd() / ".env", override=False)
    return run(args.pages, with_dataset=not args.no_dataset, dataset=args.dataset)


if __name__ == "__main__":
    sys.exit(main())
