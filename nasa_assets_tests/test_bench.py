"""The benchmark script itself runs end to end (tiny sizes); its timings are not asserted."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_tiny_and_prints_its_table(tmp_path):
    output = tmp_path / "latest.md"
    proc = subprocess.run(
        [sys.executable, "-m", "nasa_assets_tests.bench", "--pages", "1", "--total-hits", "10",
         "--image-bytes", "2000", "--delay", "0", "--big-image-bytes", "1000000", "--big-images", "3",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| metric | value | target | met? |" in proc.stdout
    report = output.read_text()
    assert report in proc.stdout
    assert "- machine: " in report and "- command: `python -m nasa_assets_tests.bench --pages 1" in report
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.startswith("| ")}
    for metric in ("baseline: wall time", "project end to end: wall time (start-up included)",
                   "project end to end: peak RSS", "moon_images step: rate",
                   "re-run: moon_images step", "big images: peak RSS of the run"):
        assert metric in rows, metric
    # Counts, not timings: every image stored once, then nothing fetched again.
    assert rows["project end to end: images stored"].startswith("| project end to end: images stored | 10 (0 failed)")
    assert "| 0 (10 already stored) | 0 | yes |" in rows["re-run: image downloads"]
    assert "0 collection.json" in rows["re-run: requests to the double"]
    assert "3 stored (0 failed)" in rows["big images: 1 MB each, concurrency 16"]


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
