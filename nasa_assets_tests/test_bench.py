"""The benchmark's helpers (process-tree memory, targets, tables) and a tiny end-to-end run; the
bench's timings are never asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasa_assets_tests.bench.procs import TreeSampler, memory_kb, parse_stat, run_measured, step_of, tree
from nasa_assets_tests.bench.report import (
    PathResult,
    WholeResult,
    markdown_table,
    median,
    side_by_side_targets,
    whole_targets,
)

ROOT = Path(__file__).resolve().parent.parent


def test_parse_stat_takes_the_name_up_to_the_last_parenthesis():
    info = parse_stat("4242 (dagster (worker)) S 17 4242 4200 0 -1 4194560 ...")
    assert (info.pid, info.ppid, info.sid, info.name) == (4242, 17, 4200, "dagster (worker)")


def _fake_proc(root: Path, pid: int, ppid: int, sid: int, rss_kb: int) -> None:
    folder = root / str(pid)
    folder.mkdir()
    (folder / "stat").write_text(f"{pid} (python) S {ppid} {pid} {sid} 0 -1 0 0 0")
    (folder / "smaps_rollup").write_text(f"00400000-7ffd rw-p 0 0:0 0 [rollup]\nRss: {rss_kb} kB\nPss: {rss_kb // 2} kB\n")


def test_tree_sums_descendants_and_orphans_of_the_session_only(tmp_path):
    _fake_proc(tmp_path, 100, 1, 100, 1000)    # the command, leader of session 100
    _fake_proc(tmp_path, 101, 100, 100, 2000)  # its child
    _fake_proc(tmp_path, 102, 101, 100, 3000)  # a grandchild
    _fake_proc(tmp_path, 103, 1, 100, 4000)    # re-parented to init, still in the session
    _fake_proc(tmp_path, 104, 100, 104, 5000)  # a child that started its own session
    _fake_proc(tmp_path, 200, 1, 200, 9000)    # someone else
    (tmp_path / "self").mkdir()                # not a pid
    sampler = TreeSampler(roots={100}, sessions={100}, proc=tmp_path)
    snap = sampler.sample()
    assert (snap.rss_kb, snap.pss_kb, snap.processes) == (15000, 7500, 5)
    (tmp_path / "102" / "smaps_rollup").unlink()  # gone meanwhile: counted as nothing
    (tmp_path / "102" / "stat").unlink()
    assert sampler.mark("later").rss_kb == 12000
    assert sampler.peak.rss_kb == 15000 and sampler.marks["later"].processes == 4


def test_watch_counts_the_started_session_never_the_callers(tmp_path):
    _fake_proc(tmp_path, 50, 1, 50, 7000)     # the caller (the bench), leader of session 50
    _fake_proc(tmp_path, 51, 50, 50, 9000)    # a server the caller started in its own session
    _fake_proc(tmp_path, 100, 50, 50, 1000)   # the command, before its setsid took effect
    _fake_proc(tmp_path, 101, 100, 100, 2000)  # its child
    sampler = TreeSampler(proc=tmp_path)
    sampler.watch(100)
    assert sampler.sample().rss_kb == 3000


def test_tree_without_sessions_follows_parents():
    from nasa_assets_tests.bench.procs import ProcInfo

    procs = [ProcInfo(1, 0, 1, "init"), ProcInfo(10, 1, 10, "a"), ProcInfo(11, 10, 10, "b"),
             ProcInfo(12, 11, 10, "c"), ProcInfo(20, 1, 20, "x")]
    assert tree(procs, roots=[10]) == {10, 11, 12}
    assert tree(procs, roots=[99]) == set()  # a root that is gone


def test_memory_of_a_gone_process_is_zero(tmp_path):
    assert memory_kb(4242, tmp_path) == (0, 0)


def test_run_measured_counts_the_memory_of_a_grandchild(tmp_path):
    """A child that starts a grandchild holding 80 MB: the tree's peak includes it, which the
    child's own ru_maxrss would not."""
    released = tmp_path / "released"
    # The grandchild holds its memory until the sample is taken (bounded), not for a guessed time.
    grandchild = ("import os, sys, time; block = bytearray(80 * 1024 * 1024); block[::4096] = b'x' * len(block[::4096]); "
                  "print('holding', flush=True); stop = time.monotonic() + 60\n"
                  f"while not os.path.exists({str(released)!r}) and time.monotonic() < stop: time.sleep(0.01)")
    child = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
             "sys.exit(p.wait())")
    marks = []

    def on_line(line, sampler):
        if line.startswith("holding"):
            marks.append(sampler.mark("holding"))
            released.touch()

    measured = run_measured([sys.executable, "-c", child], dict(os.environ), tmp_path, tmp_path / "log",
                            timeout=60, on_line=on_line)
    assert measured.returncode == 0, measured.tail()
    assert len(marks) == 1 and marks[0].processes == 2
    assert marks[0].rss_kb > 80 * 1024 and measured.peak_rss_kb >= marks[0].rss_kb
    assert "holding" in (tmp_path / "log").read_text()


def test_markdown_table_escapes_pipes_and_newlines():
    assert markdown_table(["a", "b"], [["x|y", "1\n2"]]) == "| a | b |\n|---|---|\n| x\\|y | 1 2 |"


def _path(name, images, seconds, rss, error=""):
    return PathResult(name, "cmd", images, seconds, rss, rss, error=error)


def test_side_by_side_targets_met_missed_and_not_measured():
    targets = side_by_side_targets({
        "materialize": _path("m", 1000, 10.0, 300),    # 100 images/s
        "img2dataset": _path("i", 1000, 15.0, 1000),   # 66.7 images/s
        "materialize_500": _path("m5", 500, 8.0, 300),
        "sequential_500": _path("s5", 500, 30.0, 50),  # 3.75x: missed
        "dev_1": _path("d", 100, 5.0, 900, error="run FAILURE"),
        "cli_1": _path("c", 100, 4.0, 300),
    })
    assert [t.met for t in targets] == [True, True, False, None]
    assert targets[0].measured == "100.0 vs 66.7 = 1.50x"
    assert targets[1].measured == "300 MB vs 1000 MB = 0.30"
    targets = side_by_side_targets({"materialize": _path("m", 1000, 10.0, 360),
                                    "img2dataset": _path("i", 1000, 20.0, 2000)})
    assert [t.met for t in targets[:2]] == [True, False]  # 1/3 of the RSS, but over 350 MB


def test_whole_targets_need_zero_downloads_and_collection_lookups_on_the_rerun():
    first = _path("w", 10_000, 50.0, 390)
    again = _path("w again", 0, 9.0, 300)
    again.requests = {"search": 100, "collection": 3, "image": 0}
    targets = {t.name: t for t in whole_targets(WholeResult(first, {"page 10": 250.0, "page 100": 380.0}, again))}
    assert targets["10000 images in one command: images/s"].met is True
    assert targets["... RSS after page 10 / after page 100"].measured == "250 MB / 380 MB"
    assert targets["... RSS after page 10 / after page 100"].met is False  # +52%: not flat
    assert targets["re-run: wall time"].met is True
    assert targets["re-run: image downloads"].met is True
    assert targets["re-run: collection.json requests"].met is False


# System tier: it runs the benchmark tool end to end, every entry point as its own process, like the
# other system tests; `make test` (CI) still runs it.
@pytest.mark.system
def test_bench_runs_tiny_and_prints_its_table(tmp_path):
    """Counts, not timings: every image stored once, then nothing fetched again."""
    output = tmp_path / "latest.md"
    proc = subprocess.run(
        [sys.executable, "-m", "nasa_assets_tests.bench", "--pages", "1", "--whole-pages", "2",
         "--image-bytes", "2000", "--delay", "0", "--skip-dev", "--skip-img2dataset", "--skip-big",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = output.read_text()
    assert report in proc.stdout
    assert "- command: `python -m nasa_assets_tests.bench --pages 1 --whole-pages 2" in report
    rows = {}
    for line in report.splitlines():  # the first table that names a path: its figures
        if line.startswith("| "):
            cells = line[2:-2].split(" | ")
            rows.setdefault(cells[0], cells)
    assert rows["a sequential requests + boto3 loop"][1] == "100"
    assert rows["`python -m nasa_assets run --pages 1 --no-dataset`"][1] == "100"
    assert rows["`dagster asset materialize ... --partition-range 0001...0001`"][1] == "100"
    assert rows["`python -m nasa_assets run --pages 1-2`"][1] == "200"
    again = rows["`python -m nasa_assets run --pages 1-2` again"]
    assert again[1] == "0" and again[6].endswith("/ 0 / 0")  # no collection.json, no image
    assert rows["re-run: image downloads"][1:4] == ["0", "0", "yes"]
    assert rows["re-run: collection.json requests"][1:4] == ["0", "0", "yes"]
    # Where the time goes: the page run's steps, the rebuild's steps, the events Dagster stored.
    assert "Dagster events stored by moon_images_job" in report
    assert "moon_dataset_job run" in report and "(moon_webdataset " in report


def test_sampler_keeps_each_process_peak_by_command_line(tmp_path):
    _fake_proc(tmp_path, 100, 1, 100, 1000)
    _fake_proc(tmp_path, 101, 100, 100, 2000)
    (tmp_path / "101" / "cmdline").write_bytes(b"python\0-c\0from multiprocessing.spawn import spawn_main\0")
    sampler = TreeSampler(roots={100}, sessions={100}, proc=tmp_path)
    sampler.sample()
    (tmp_path / "101" / "smaps_rollup").write_text("Rss: 500 kB\nPss: 500 kB\n")
    sampler.sample()
    assert sampler.peak_of("spawn_main") == 2000
    assert sampler.peak_of("no such command") == 0


def test_step_of_reads_the_step_key_of_both_dagster_log_formats():
    run_id = "893ad5bc-b96a-46d1-8180-0d5eef51e21c"
    assert step_of(f"18:37:34 INFO moon_images_job - {run_id} - moon_images - page 0074 done") == "moon_images"
    assert step_of(f"2026-12-04 18:36:50 +0000 - dagster - DEBUG - job - {run_id} - 24638 - "
                   "search_results - STEP_START - Started execution of step") == "search_results"
    assert step_of(f"2026-12-04 18:36:50 +0000 - dagster - DEBUG - job - {run_id} - 24638 - RUN_SUCCESS - ") is None
    assert step_of("nasa_assets: pages 1-3 -> s3://bucket/prefix") is None


def test_sampler_keeps_the_peak_of_each_phase(tmp_path):
    _fake_proc(tmp_path, 100, 1, 100, 1000)
    sampler = TreeSampler(roots={100}, sessions={100}, proc=tmp_path)
    sampler.sample()
    (tmp_path / "100" / "smaps_rollup").write_text("Rss: 3000 kB\nPss: 3000 kB\n")
    sampler.enter("search_results")  # the sample at the switch still belongs to start-up
    (tmp_path / "100" / "smaps_rollup").write_text("Rss: 2000 kB\nPss: 2000 kB\n")
    sampler.sample()
    sampler.enter("moon_images")
    assert sampler.phase_peaks == {"start-up": 3000, "search_results": 2000}
    sampler.sample()
    assert sampler.phase_peaks["moon_images"] == 2000


def test_median_of_one_page_runs_keeps_every_time_and_never_hides_a_failure():
    runs = [_path("a", 100, 9.0, 1), _path("b", 100, 5.0, 1), _path("c", 100, 7.0, 1)]
    chosen = median(runs)
    assert chosen.name == "c" and chosen.note == "median of 3 one-page runs (9.0, 5.0, 7.0 s)"
    broken = [_path("a", 100, 5.0, 1), _path("b", 0, 1.0, 1, error="run FAILURE")]
    assert median(broken).name == "b"


# System tier: it runs the benchmark tool end to end, every entry point as its own process, like the
# other system tests; `make test` (CI) still runs it.
@pytest.mark.system
def test_exports_bench_runs_tiny_and_reports_each_step():
    proc = subprocess.run(
        [sys.executable, "-m", "nasa_assets_tests.bench_exports", "--images", "1", "--repeat", "1",
         "--dataset-images", "30", "--workers", "4", "--hashes", "500", "--export", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "moon_dataset hashing step, 30 JPEGs of 1920x1440" in out
    assert "(30 decoded:" in out and "rebuild with every sha256 seen before:" in out
    assert "(0 decoded)" in out  # the rebuild reuses every hash
    assert "group_duplicates over 500 images (threshold 6)" in out
    assert "write_webdataset of 30 images" in out


def test_whole_run_marks_rss_at_the_first_progress_line_past_each_page_count(tmp_path):
    from nasa_assets_tests.bench.whole import page_marker

    _fake_proc(tmp_path, 100, 1, 100, 1000)
    sampler = TreeSampler(roots={100}, sessions={100}, proc=tmp_path)
    on_line = page_marker((10, 100))
    on_line("12:00:01 INFO ... - page 0003 done; 3/100 pages, 300/10000 images: ...\n", sampler)
    assert sampler.marks == {}
    (tmp_path / "100" / "smaps_rollup").write_text("Rss: 2000 kB\nPss: 2000 kB\n")
    on_line("12:00:05 INFO ... - 11/100 pages, 1100/10000 images: ...\n", sampler)  # page 10's line was throttled
    on_line("12:00:06 INFO ... - page 0012 done; 12/100 pages, ...\n", sampler)
    (tmp_path / "100" / "smaps_rollup").write_text("Rss: 3000 kB\nPss: 3000 kB\n")
    on_line("12:01:00 INFO ... - moon_images done; 100/100 pages, 10000/10000 images: ...\n", sampler)
    assert {k: v.rss_kb for k, v in sampler.marks.items()} == {"page 10": 2000, "page 100": 3000}
