"""img2dataset 1.47 given the image URLs the project resolved, in a venv of its own.

img2dataset needs pandas<3 and the project pins pandas 3, so it cannot share the project's venv:
the first `make bench` creates `.venv-img2dataset/` from img2dataset-requirements.txt (exact pins;
PyPI must be reachable then) and later runs reuse it while the pins are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from nasa_assets_tests.bench.paths import PREFIX, Bench
from nasa_assets_tests.bench.procs import ROOT
from nasa_assets_tests.bench.report import PathResult

VENV = ROOT / ".venv-img2dataset"
REQUIREMENTS = Path(__file__).with_name("img2dataset-requirements.txt")
PROCESSES, THREADS = 2, 16
SHARD = 100  # images per shard: several shards, so both processes get work


def ensure_venv(log: Path) -> Path:
    """The img2dataset executable, installing the pinned venv first when it is missing or stale."""
    stamp = VENV / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    executable = VENV / "bin" / "img2dataset"
    if executable.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return executable
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    print(f"bench: creating {VENV.name}/ with img2dataset (first use; a few minutes) ...", flush=True)
    with open(log, "ab") as out:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([base, "-m", "venv", str(VENV)], check=True, stdout=out, stderr=subprocess.STDOUT)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                       check=True, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
    stamp.write_text(wanted)
    return executable


def url_list(bench: Bench, bucket: str, pages: range) -> list[str]:
    """The image URLs of the pages' sampled_manifest tables, as the project resolved them."""
    import pandas as pd

    urls: list[str] = []
    for page in pages:
        body = bench.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/sampled_manifest/{page:04d}.parquet")["Body"]
        frame = pd.read_parquet(io.BytesIO(body.read()), columns=["image_url"])
        urls += [u for u in frame["image_url"] if isinstance(u, str) and u]
    return urls


def run(bench: Bench, urls: list[str]) -> PathResult:
    name = f"img2dataset 1.47 ({PROCESSES} processes x {THREADS} threads, given the URL list)"
    try:
        executable = ensure_venv(bench.workdir / "img2dataset-install.log")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        return PathResult(name, "", error=f"could not install img2dataset ({error}); see "
                                           f"{bench.workdir / 'img2dataset-install.log'}")
    listing = bench.workdir / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    bucket = bench.bucket("img2dataset")
    env = bench.env(bucket, bench.home("img2dataset"))
    # s3fs (through fsspec) takes its endpoint from FSSPEC_S3_ENDPOINT_URL; botocore from
    # AWS_ENDPOINT_URL (set by bench.env). No update check against the internet.
    env.update(FSSPEC_S3_ENDPOINT_URL=bench.moto_url, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled")
    argv = [str(executable), "--url_list", str(listing), "--input_format", "txt",
            "--output_folder", f"s3://{bucket}/img2dataset", "--output_format", "files",
            "--processes_count", str(PROCESSES), "--thread_count", str(THREADS),
            "--number_sample_per_shard", str(SHARD), "--resize_mode", "no", "--skip_reencode", "True",
            "--timeout", "30", "--retries", "0", "--enable_wandb", "False"]
    measured = bench.measure("img2dataset", argv, env)
    result = PathResult(name, shlex.join(["img2dataset", *argv[1:]]).replace(str(bench.workdir), "<work>"),
                        bench.count(bucket, "img2dataset/"), measured.seconds, measured.peak_rss_mb,
                        measured.peak_pss_kb / 1024, measured.cpu_seconds, bench.control.counts(), bucket=bucket)
    result.note = "writes to the same moto S3 (s3fs); `--resize_mode no --skip_reencode True`"
    if measured.returncode != 0 or result.images == 0:
        result.error = f"exit {measured.returncode}, {result.images} images: {measured.tail(8)}"
    return result
