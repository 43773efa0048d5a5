"""The whole collection (100 pages, 10,000 images) in one command, and the same command again."""

from __future__ import annotations

import re

from nasa_assets_tests.bench.paths import PREFIX, Bench, run_phases
from nasa_assets_tests.bench.procs import PYTHON, TreeSampler
from nasa_assets_tests.bench.report import PathResult, WholeResult

# moon_images logs "page 0042 done; ..." as each page's last image is settled.
PAGE_DONE = re.compile(r"\bpage \d{4} done\b")


def page_marker(marks_at: tuple[int, ...]):
    """An output-line callback that samples the tree's RSS when the n-th page is done."""
    seen = [0]

    def on_line(line: str, sampler: TreeSampler) -> None:
        if PAGE_DONE.search(line):
            seen[0] += 1
            if seen[0] in marks_at:
                sampler.mark(f"page {seen[0]}")

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
                            bucket=bucket, phases=run_phases(home, measured.seconds))
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
