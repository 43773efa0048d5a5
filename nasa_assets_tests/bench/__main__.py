"""Entry point of `python -m nasa_assets_tests.bench`; see the package docstring."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import boto3

from nasa_assets.defs.settings_spec import SETTINGS
from nasa_assets_tests import bench as package
from nasa_assets_tests.bench import img2dataset, paths, whole
from nasa_assets_tests.bench.procs import ROOT, DoubleControl, start_double, start_moto
from nasa_assets_tests.bench.report import (
    PathResult,
    Target,
    machine,
    markdown_table,
    median,
    paths_table,
    phases_table,
    side_by_side_targets,
    targets_table,
    whole_targets,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.bench",
                                     description=package.__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10, help="pages of 100 images in the side-by-side run (default 10)")
    parser.add_argument("--whole-pages", type=int, default=100, help="pages of the whole-collection run (default 100)")
    parser.add_argument("--skip-whole", action="store_true", help="leave out the whole-collection run")
    parser.add_argument("--skip-dev", action="store_true", help="leave out the `dagster dev` path")
    parser.add_argument("--one-page-runs", type=int, default=3,
                        help="one-page runs per path in the dagster dev vs CLI comparison (median; default 3)")
    parser.add_argument("--dequeue-interval", type=int, default=None,
                        help="dagster dev path: run_queue.dequeue_interval_seconds set in a copy of the "
                             "repo's dagster.dev.yaml (default: the file as it is)")
    parser.add_argument("--skip-img2dataset", action="store_true", help="leave out img2dataset")
    parser.add_argument("--skip-sequential", action="store_true", help="leave out the sequential loop")
    parser.add_argument("--skip-big", action="store_true", help="leave out the large-image memory run")
    parser.add_argument("--big-image-bytes", type=int, default=60_000_000, help="image size in the memory run")
    parser.add_argument("--big-images", type=int, default=40, help="images in the memory run (one page)")
    parser.add_argument("--total-hits", type=int, default=None,
                        help="hits in the double (default: enough for every run, at most 10000)")
    parser.add_argument("--delay", type=float, default=0.05, help="the double's delay per request, seconds")
    parser.add_argument("--image-bytes", type=int, default=300_000, help="size of the served images")
    parser.add_argument("--concurrency", type=int, default=SETTINGS["DOWNLOAD_CONCURRENCY"].default,
                        help="DOWNLOAD_CONCURRENCY (default: the project's default, %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for one command, seconds")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "latest.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Dagster homes)")
    args = parser.parse_args(argv)
    if not 1 <= args.one_page_runs <= 10:
        parser.error("--one-page-runs must be from 1 to 10")
    if not 1 <= args.pages <= 99 - args.one_page_runs:
        parser.error(f"--pages must be from 1 to {99 - args.one_page_runs} (the pages after them are the "
                     "one-page comparisons)")
    if not 1 <= args.whole_pages <= 100:
        parser.error("--whole-pages must be from 1 to 100")
    if args.total_hits is None:
        args.total_hits = min(10_000, 100 * max(args.pages + args.one_page_runs + 1, 0 if args.skip_whole else args.whole_pages))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m nasa_assets_tests.bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = dt.datetime.now().astimezone()
    host = machine()  # the load average before the bench adds its own
    workdir = Path(tempfile.mkdtemp(prefix="nasa-bench-"))
    sections: list[str] = []
    failures: list[str] = []
    try:
        _bench(args, workdir, sections, failures)
    except Exception:  # report what was measured so far, and why the rest was not
        failures.append(traceback.format_exc(limit=5))
    finally:
        if args.keep:
            print(f"bench: work folder kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    header = [
        "## Benchmark", "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {host}",
        f"- command: `{command.strip()}`",
        (f"- setup: NASA double (subprocess) with {args.delay * 1000:.0f} ms per request and "
         f"{args.image_bytes / 1000:.0f} KB images, {args.total_hits} hits (half the items in link "
         "format 1.0, which needs collection.json); one moto S3 server (subprocess); "
         f"DOWNLOAD_CONCURRENCY={args.concurrency}. Each path has its own bucket and DAGSTER_HOME. RSS "
         "and PSS are summed over the path's whole process tree, sampled from /proc every 0.2 s."),
    ]
    report = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    if failures:
        report += "\n" + "\n".join(f"- FAILED: {f}" for f in failures) + "\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}")
    if failures:
        return 2
    missed = "| **no** |" in report
    return 1 if args.strict and missed else 0


def _step(message: str) -> None:
    print(f"bench: {message} ...", flush=True)


def _bench(args, workdir: Path, sections: list[str], failures: list[str]) -> None:
    n = args.pages
    # The one-page comparison takes the median of a few pages: a queued run waits up to the
    # daemon's dequeue interval, a random share of it each time.
    one_pages = list(range(n + 1, n + 1 + args.one_page_runs))
    with start_moto(workdir / "moto.log") as moto, \
            start_double(args.total_hits, args.delay, args.image_bytes, workdir / "double.log") as double:
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        bench = paths.Bench(workdir, double.url, moto.url, s3, DoubleControl(double.url), args.concurrency,
                            args.timeout)
        by_key: dict[str, PathResult] = {}
        order: list[str] = []

        def record(key: str, result: PathResult | None) -> None:
            if result is None:
                return
            by_key[key] = result
            order.append(key)
            if result.error:
                failures.append(f"{result.name}: {result.error}")
            print(f"bench:   {result.images} images in {result.seconds:.1f} s, {result.rate:.1f} images/s, "
                  f"peak RSS {result.peak_rss_mb:.0f} MB{' (FAILED)' if result.error else ''}", flush=True)

        if not args.skip_sequential:
            _step(f"the sequential loop, pages 1-{n}")
            seq, seq5 = paths.sequential(bench, n)
            record("sequential", seq)
            record("sequential_500", seq5)
        _step(f"python -m nasa_assets run --pages 1-{n} --no-dataset")
        record("cli", paths.cli(bench, 1, n))
        _step(f"dagster asset materialize --partition-range {paths.page_range(1, n)}")
        record("materialize", paths.materialize(bench, 1, n))
        if n > 5:
            _step(f"dagster asset materialize --partition-range {paths.page_range(1, 5)}")
            record("materialize_500", paths.materialize(bench, 1, 5, name="materialize_500"))
        elif n == 5:
            by_key["materialize_500"] = by_key["materialize"]
            if "sequential" in by_key:
                by_key["sequential_500"] = by_key["sequential"]
        if not args.skip_dev:
            _step("dagster dev: starting (not timed)")
            try:
                with paths.DagsterDev(bench, args.dequeue_interval) as dev:
                    print(f"bench:   ready in {dev.startup_seconds:.1f} s, idle RSS {dev.idle_rss_mb:.0f} MB",
                          flush=True)
                    _step(f"dagster job launch, pages 1-{n}, until the run succeeds")
                    record("dev", dev.launch(1, n, "dev"))
                    launches = []
                    for page in one_pages:
                        _step(f"dagster job launch, page {page}")
                        launches.append(dev.launch(page, page, f"dev_{page}"))
                    record("dev_1", median(launches))
                    ui_page = one_pages[-1] + 1
                    _step(f"the UI's launch (GraphQL), page {ui_page}")
                    record("dev_ui_1", dev.launch(ui_page, ui_page, "dev_ui", via="graphql"))
            except Exception as error:  # the other paths' figures still count
                record("dev", PathResult("`dagster job launch` into `dagster dev`", "", error=str(error)[:800]))
            runs = []
            for page in one_pages:
                _step(f"python -m nasa_assets run --pages {page} --no-dataset (one page, to compare)")
                runs.append(paths.cli(bench, page, page, name=f"cli_{page}"))
            record("cli_1", median(runs))
        if not args.skip_img2dataset and not by_key["cli"].error:
            urls = img2dataset.url_list(bench, by_key["cli"].bucket, range(1, n + 1))
            _step(f"img2dataset on the {len(urls)} image URLs the project resolved")
            record("img2dataset", img2dataset.run(bench, urls))

        sections.append(f"### Every path, {n} pages\n\n" + paths_table([by_key[k] for k in order
                                                                          if not k.endswith("_500")]))
        five = [by_key[k] for k in ("sequential_500", "materialize_500") if k in by_key]
        if n > 5 and five:
            sections.append("### 500 images (5 pages)\n\n" + paths_table(five))
        sections.append("### Targets (side by side)\n\n" + targets_table(side_by_side_targets(by_key)))
        sections.append("### Where the time goes\n\n" + phases_table([by_key[k] for k in order]))
        sections.append("### Commands\n\n" + markdown_table(
            ["path", "command"], [[by_key[k].name, f"`{by_key[k].command}`"] for k in order if by_key[k].command]))

        if not args.skip_whole:
            _step(f"the whole collection: python -m nasa_assets run --pages 1-{args.whole_pages}, then again")
            result = whole.run(bench, args.whole_pages)
            for item in (result.first, result.again):
                if item is not None and item.error:
                    failures.append(f"{item.name}: {item.error}")
            rows = [r for r in (result.first, result.again) if r is not None]
            sections.append(f"### The whole collection ({args.whole_pages} pages)\n\n" + paths_table(rows)
                            + "\n\n" + targets_table(whole_targets(result)) + "\n\n" + phases_table(rows))

        if not args.skip_big:  # last: it reconfigures the shared double
            _step(f"{args.big_images} images of {args.big_image_bytes / 1e6:.0f} MB, one page")
            bench.control.configure(total_hits=args.big_images, image_bytes=args.big_image_bytes)
            big = paths.cli(bench, 1, 1, name="big")
            big.name = f"{args.big_images} images of {args.big_image_bytes / 1e6:.0f} MB: {big.name}"
            if big.error:
                failures.append(f"{big.name}: {big.error}")
            goal = big.peak_rss_mb <= 400
            sections.append("### Large images\n\n" + paths_table([big]) + "\n\n" + targets_table(
                [Target("peak RSS (tree) with large images", f"{big.peak_rss_mb:.0f} MB", "<= 400 MB", goal)]))


if __name__ == "__main__":
    sys.exit(main())
