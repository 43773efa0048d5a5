"""A run killed hard mid-page, then run again (issue 5): the page ends complete, every image once,
every file whole, no temporary file left behind. The run is a real `python -m nasa_assets run`
process, killed with SIGKILL while it downloads from a deliberately slow NASA double; the re-run
calls the same command's main() in this process."""

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from nasa_assets.__main__ import main
from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.storage.local import INCOMING
from nasa_assets_tests.helpers import assert_image_matches, double_env

ROOT = Path(__file__).resolve().parent.parent
# The page's downloads are sampled (36 of 100 items): the kill needs images stored and images to
# go, not 100. Each request waits DELAY seconds, so at DOWNLOAD_CONCURRENCY 4 the downloads take
# about 3.6 s, and after `enough` images about 2.6 s are left (as with 100 items at 0.15 s): time
# to catch a write in flight, and room for a stall of the test on a busy machine before the kill.
FACTOR = 4
DELAY = 0.4


class LocalSide:
    # Seconds between looks at the folder: often enough to catch a 3 MB write in flight now and
    # then, rarely enough not to starve the run it watches of one of two cores.
    poll = 0.02
    enough = 10  # images after which to kill even when no write is caught in flight
    image_bytes = 3 * 1024 * 1024  # big enough that a write into .incoming takes a moment

    def __init__(self, root: Path):
        self.root = root

    def env(self) -> dict:
        return {"NASA_ASSETS_LOCAL_DIR": str(self.root)}

    def images(self) -> dict[str, bytes]:
        folder = self.root / "images"
        return {f"images/{p.name}": p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}

    def image_count(self) -> int:
        folder = self.root / "images"
        return len(os.listdir(folder)) if folder.exists() else 0

    def incoming(self) -> list[str]:
        folder = self.root / INCOMING
        return os.listdir(folder) if folder.exists() else []

    def table(self, key: str) -> pd.DataFrame | None:
        path = self.root / key
        return pd.read_parquet(path) if path.exists() else None


class S3Side:
    poll = 0.05
    enough = 5  # single PUTs: nothing to catch in flight
    image_bytes = None

    def __init__(self, client, bucket: str, endpoint: str, prefix: str = "moon_dataset"):
        self.client, self.bucket, self.endpoint, self.prefix = client, bucket, endpoint, prefix

    def env(self) -> dict:
        return {"S3_BUCKET_NAME": self.bucket, "S3_KEY_PREFIX": self.prefix, "AWS_ENDPOINT_URL": self.endpoint}

    def _keys(self, under: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def images(self) -> dict[str, bytes]:
        return {k[len(self.prefix) + 1:]: self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read()
                for k in self._keys("images/")}

    def image_count(self) -> int:
        return len(self._keys("images/"))

    def incoming(self) -> list[str]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    def table(self, key: str) -> pd.DataFrame | None:
        if not self._keys(key):
            return None
        body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()
        return pd.read_parquet(io.BytesIO(body))


PROJECT_SETTINGS = ("NASA_", "S3_", "DAGSTER_")


def _settings(nasa_double, side) -> dict:
    return {**double_env(nasa_double), **side.env(), "DOWNLOAD_CONCURRENCY": "4",
            "SEARCH_RESULT_SAMPLING_FACTOR": str(FACTOR)}


def _run(nasa_double, side, tmp_path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_SETTINGS)}
    env.update(_settings(nasa_double, side), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "nasa_assets", "run", "--pages", "1"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _kill_mid_page(proc, side, deadline: float = 90) -> bool:
    """SIGKILL the run once some images are stored, preferably while a write is in flight.
    True when the kill left a temporary file behind."""
    stop = time.monotonic() + deadline
    while time.monotonic() < stop and proc.poll() is None:
        stored = side.image_count()
        if stored >= 5 and (side.incoming() or stored >= side.enough):
            break
        time.sleep(side.poll)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: its pid no longer names a live process
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return bool(side.incoming())


@pytest.fixture(params=["local", "s3"])
def side(request, tmp_path):
    if request.param == "local":
        return LocalSide(tmp_path / "dataset")
    return S3Side(request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket"),
                  request.getfixturevalue("s3_server"))


def _rerun_in_process(nasa_double, side, tmp_path, monkeypatch) -> int:
    """`python -m nasa_assets run --pages 1` as _run starts it, called in this process: what is
    tested is what the re-run finds and finishes, and only the killed run needs its own process."""
    for name in [n for n in os.environ if n.startswith(PROJECT_SETTINGS)]:
        monkeypatch.delenv(name)
    for name, value in _settings(nasa_double, side).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return main(["run", "--pages", "1"])


def test_killed_run_then_rerun_ends_complete(nasa_double, side, tmp_path, monkeypatch, capfd):
    page = [i for i in (item["data"][0]["nasa_id"] for item in nasa_double.corpus()[:100])
            if is_sampled(i, FACTOR)]
    assert len(page) == 36
    nasa_double.configure(image_bytes=side.image_bytes, delay=DELAY)
    killed = _run(nasa_double, side, tmp_path)
    left_temp_files = _kill_mid_page(killed, side)

    # Killed mid-page: some images, no moon_images table yet.
    before = side.images()
    assert 5 <= len(before) < len(page)
    assert side.table("moon_images/0001.parquet") is None
    for key, data in before.items():  # whatever is under a final key is whole
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    if isinstance(side, LocalSide) and not left_temp_files:
        # The kill fell between writes; leave what a write in flight would have left.
        (side.root / INCOMING / f"{killed.pid}-deadbeef-tmpabc").write_bytes(b"half an image")

    nasa_double.configure(delay=0.0)
    nasa_double.reset_counts()
    rerun = _rerun_in_process(nasa_double, side, tmp_path, monkeypatch)
    assert rerun == 0, capfd.readouterr().err[-3000:]

    manifest = side.table("sampled_manifest/0001.parquet")
    images = side.table("moon_images/0001.parquet")
    assert list(images["nasa_id"]) == list(manifest["nasa_id"]) == page
    assert set(images["status"]) <= {"stored", "already_stored"}
    # What the killed run finished is not fetched again.
    assert (images["status"] == "already_stored").sum() == len(before)
    assert nasa_double.counts["image"] == len(page) - len(before)

    stored = side.images()
    assert sorted(stored) == sorted(images["image_key"])  # exactly one object per nasa_id
    assert images["image_key"].is_unique
    for row in images.to_dict("records"):
        data = stored[row["image_key"]]
        assert_image_matches(data, row)
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(
            nasa_double.image_bytes_for(row["nasa_id"], "large")).hexdigest()
    assert side.incoming() == []  # no temporary files (local) / unfinished uploads (S3) left
    # The dataset built after the page holds every image of it once.
    assert sorted(side.table("moon_dataset.parquet")["nasa_id"]) == sorted(page)


def test_orphan_rules_for_temporary_files(tmp_path):
    """Leftovers go: a dead writer's at once, anyone's once stale (a pid reused after a restart,
    e.g. pid 1 in a container, or a writer on another host). A live writer's fresh file stays."""
    from nasa_assets.storage.local import _HOST_TAG, STALE_AFTER, LocalStore

    store = LocalStore(tmp_path)
    incoming = tmp_path / INCOMING
    incoming.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me, old = os.getpid(), time.time() - STALE_AFTER - 60
    files = {
        f"{dead.pid}-{_HOST_TAG}-aaaaaaaa-x": (None, False),  # dead writer here: removed
        f"{dead.pid}-deadbeef-x": (None, False),  # the same, in the name format without host tag
        f"{me}-{_HOST_TAG}-bbbbbbbb-x": (None, True),  # a live writer (this process): kept
        f"{me}-{_HOST_TAG}-cccccccc-x": (old, False),  # same pid but untouched for long: a leftover
        f"{dead.pid}-h00000000-dddddddd-x": (None, True),  # another host: its pids mean nothing here
        f"{me}-h00000000-eeeeeeee-x": (old, False),  # another host, stale: removed
    }
    for name, (mtime, _) in files.items():
        (incoming / name).write_bytes(b"partial")
        if mtime:
            os.utime(incoming / name, (mtime, mtime))
    assert store.remove_orphans() == sum(not kept for _, kept in files.values())
    assert sorted(os.listdir(incoming)) == sorted(n for n, (_, kept) in files.items() if kept)
