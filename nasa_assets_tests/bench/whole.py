"""The whole collection (100 pages, 10,000 images) in one command, and the same command again."""

from __future__ import annotations

import re

from nasa_assets_tests.bench.paths import PREFIX, Bench, event_counts, run_phases
from nasa_assets_tests.bench.procs import PYTHON, TreeSampler
from nasa_assets_tests.bench.report import PathResult, WholeResult

# moon_images' progress lines ("page 0042 done; 42/100 pages, ..." when a page completes, at most
# one a second, and a line every few seconds) say how many pages are done.
PAGES_DONE = re.compile(r"\b(\d+)/\d+ pages\b")


def page_marker(marks_at: tuple[int, ...]):
    """An output-line callback that samples the tree's RSS at the first progress line that
    reports at least n pages done, for each n in `marks_at`."""
    left = sorted(set(marks_at))

    def on_line(line: str, sampler: TreeSampler) -> None:
        found = PAGES_DONE.search(line)
        while found and left and int(found.group(1)) >= left[0]:
            sampler.mark(f"page {left.pop(0)}")

    return on_line


def run(bench: Bench, pages: int) -> WholeResult:
    bucket, home = bench.bucket("whole"), bench.home("whole")
    env = bench.env(bucket, home)
    argv = [PYTHON, "-m", "nasa_assets", "run", "--pages", f"1-{pages}"]
    command = f"`python -m nasa_assets run --pages 1-{pages}`"
    results, stored = [], 0
    for label, marks in (("first", (10, pages)), ("again", ())):
        measured = bench.measure(f"whole-{label}", argv, env, page_marker(marks))
        now = bench.count(bucket, f"{PREFIX}/images/")
        # images: newly stored by this command (none, on the re-run)
        result = PathResult(command if label == "first" else f"{command} again", " ".join(argv[1:]),
                            now - stored, measured.seconds, measured.peak_rss_mb,
                            measured.peak_pss_kb / 1024, measured.cpu_seconds, bench.control.counts(),
                            bucket=bucket, phases=run_phases(home, measured.seconds),
                            rss_by_step={k: v / 1024 for k, v in measured.phase_peaks.items()},
                            events=event_counts(home))
        result.note = "includes the moon_dataset rebuild (a second run)"
        if measured.returncode != 0:
            result.error = f"exit {measured.returncode}: {measured.tail(6)}"
        results.append((result, measured))
        stored = now
        if result.error:
            break
    first, measured = results[0]
    rss_after = {label: snap.rss_kb / 1024 for label, snap in measured.marks.items()}
    return WholeResult(first, rss_after, results[1][0] if len(results) > 1 else None)
