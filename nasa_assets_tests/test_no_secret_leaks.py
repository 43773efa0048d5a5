"""Secrets (issue 5): with NASA_API_KEY and AWS keys set, none of them appears in anything a run
produces: logs and console output, the run's events and metadata, the instance's databases (run
configuration and snapshots included), exception messages, stored Parquet, object keys or the
stored URLs. Both a successful run (with failed images) and a failing one (the API answering 500
until the client gives up) are searched, in-process and as `python -m nasa_assets run` (the
successful one through the command's main() in this process, the failing one as a real child).

The double records the api_key it receives (the server side), which proves the key was sent."""

import io
import os
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from nasa_assets.__main__ import main
from nasa_assets.dataset.sampling import is_sampled
from nasa_assets_tests.helpers import double_env, materialize_pages

ROOT = Path(__file__).resolve().parent.parent
# Letters and digits only, so no encoding (URL, JSON, repr) could disguise them.
NASA_KEY = "nasaKEY7f3a9c2e5b1d"
AWS_ID = "AKIAQSECRETID4242XYZ"
AWS_SECRET = "awsSECRETvalue9d8c7b6a5f4e3d2c1b0aZZ"
SECRETS = (NASA_KEY, AWS_ID, AWS_SECRET)
PROJECT_SETTINGS = ("NASA_", "S3_", "DAGSTER_")  # none from this process reaches a command-line run
# A secret could surface per image or URL, and 7 of the first page's 100 items (6 of them looked up
# in collection.json) take every such path as well as 100 would: stored, failed, redirected.
FACTOR = 20
QUICK = {"SEARCH_RESULT_SAMPLING_FACTOR": str(FACTOR), "NASA_RETRY_BACKOFF_SECONDS": "0.01"}


def sampled_ids(double) -> list[str]:
    """The nasa_ids of the first page that the runs download."""
    ids = [item["data"][0]["nasa_id"] for item in double.corpus()[:100]]
    return [i for i in ids if is_sampled(i, FACTOR)]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("NASA_API_KEY", NASA_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    # boto3's own chain picks them up (moto accepts any credentials)
    assert boto3.session.Session().get_credentials().access_key == AWS_ID


class Storage:
    """Everything stored under the dataset root: keys, and the bytes and rows of every object."""

    def __init__(self, kind: str, tmp_path: Path, request):
        self.kind = kind
        if kind == "local":
            self.root = tmp_path / "dataset"
            self.env = {"NASA_ASSETS_LOCAL_DIR": str(self.root)}
        else:
            self.client = request.getfixturevalue("s3_client")
            self.bucket = request.getfixturevalue("s3_bucket")
            self.env = {"S3_BUCKET_NAME": self.bucket, "S3_KEY_PREFIX": "moon_dataset",
                        "AWS_ENDPOINT_URL": request.getfixturevalue("s3_server")}

    def objects(self) -> dict[str, bytes]:
        if self.kind == "local":
            return {p.relative_to(self.root).as_posix(): p.read_bytes()
                    for p in self.root.rglob("*") if p.is_file()}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return {k: self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read() for k in keys}

    def texts(self) -> list[str]:
        out = []
        for key, data in self.objects().items():
            out.append(key)
            out.append(data.decode("latin-1"))
            if key.endswith(".parquet"):  # decoded too: Parquet pages may be compressed
                out.append(pd.read_parquet(io.BytesIO(data)).to_json(orient="records", date_format="iso"))
        return out


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, secret_env):
    return Storage(request.param, tmp_path, request)


def database_texts(folder: Path) -> list[str]:
    """Every cell of every table of every SQLite database under `folder`, decompressed where
    Dagster compresses (snapshots), plus the raw bytes of every other file."""
    out = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix != ".db":
            out.append(path.read_bytes().decode("latin-1"))
            continue
        with sqlite3.connect(path) as db:
            for (table,) in db.execute("select name from sqlite_master where type='table'"):
                for row in db.execute(f'select * from "{table}"'):
                    for cell in row:
                        if isinstance(cell, bytes):
                            try:
                                cell = zlib.decompress(cell)
                            except zlib.error:
                                pass
                            cell = cell.decode("latin-1")
                        out.append(str(cell))
    return out


def assert_no_secret(texts: list[str], where: str) -> None:
    assert texts, f"nothing collected from {where}"
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret[:8]}... leaked in {where}: ...{text[text.find(secret) - 200:][:400]}"


def assert_key_was_sent(nasa_double) -> None:
    searches = [path for kind, path in nasa_double.requests if kind == "search"]
    assert searches and all(f"api_key={NASA_KEY}" in path for path in searches)


def test_in_process_runs_leak_no_secret(nasa_double, storage, tmp_path, capfd):
    env = double_env(nasa_double, NASA_API_KEY=NASA_KEY, NASA_MAX_RETRIES="1", **QUICK, **storage.env)
    ids = sampled_ids(nasa_double)
    nasa_double.faults = {"by_id": {ids[1]: "500", ids[2]: "truncate",
                                    ids[3]: f"redirect:http://10.0.0.1/x?api_key={NASA_KEY}"}}
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        ok = materialize_pages(env, "0001", instance=instance)
        assert ok.success
        nasa_double.faults = {"search": ["500"] * 10}
        failed = materialize_pages(env, "0002", instance=instance)
        assert not failed.success

        # The error paths ran: failed images with reasons, and a failed step with an exception.
        images = pd.read_parquet(io.BytesIO(storage.objects()[
            ("" if storage.kind == "local" else "moon_dataset/") + "moon_images/0001.parquet"]))
        assert (images["status"] == "failed").sum() == 3
        assert (images["status"] == "stored").sum() == len(ids) - 3 > 0
        assert images["error"].str.contains("refused http://10.0.0.1/x").any()
        failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "search page 2: HTTP 500" in failure[0].event_specific_data.error.cause.message

        events = []
        for run in instance.get_runs():
            events.append(dg.serialize_value(run))
            events.append(dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
            events.append(dg.serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)))
            for entry in instance.all_logs(run.run_id):
                events.append(dg.serialize_value(entry))
                events.append(entry.message or "")
        assert len(events) > 50
    assert_key_was_sent(nasa_double)
    captured = capfd.readouterr()

    assert_no_secret(events, "the run's events, metadata, snapshots and configuration")
    assert_no_secret(database_texts(home), "the instance's files")
    assert_no_secret([captured.out, captured.err], "console output")
    assert_no_secret(storage.texts(), "stored objects, their keys, Parquet rows and URLs")


@pytest.mark.parametrize("storage", ["s3"], indirect=True)  # the in-process test covers both
def test_command_line_runs_leak_no_secret(nasa_double, storage, tmp_path, monkeypatch, capfd):
    home = tmp_path / "home"
    home.mkdir()
    settings = {**double_env(nasa_double), **storage.env, "NASA_API_KEY": NASA_KEY,
                "NASA_MAX_RETRIES": "1", "DAGSTER_HOME": str(home), **QUICK}
    ids = sampled_ids(nasa_double)
    nasa_double.faults = {"by_id": {ids[0]: "503"}}

    # The successful run (page, failed image, dataset, card, WebDataset export, summary lines) is
    # the command's main() in this process, with the same settings and working directory.
    for name in [n for n in os.environ if n.startswith(PROJECT_SETTINGS)]:
        monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    ok_code = main(["run", "--pages", "1"])
    ok = capfd.readouterr()
    assert ok_code == 0, ok.err[-3000:]
    assert f"{len(ids) - 1} stored, 0 already stored, 1 failed" in ok.out
    assert f"{len(ids) - 1} samples in" in ok.out
    # The card and the WebDataset export were written, so their bytes are searched below.
    assert {"moon_dataset/README.md", "moon_dataset/webdataset/index.json"} <= set(storage.objects())
    # The failing run is a real child process: its error output (step failure, search hint,
    # dataset line) as a user sees it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_SETTINGS)}
    env.update(settings, PYTHONPATH=str(ROOT))
    nasa_double.faults = {"search": ["500"] * 10}
    failed = subprocess.run([sys.executable, "-m", "nasa_assets", "run", "--pages", "2"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1
    assert "step search_results failed" in failed.stderr and "HTTP 500" in failed.stderr
    assert_key_was_sent(nasa_double)

    assert_no_secret([ok.out, ok.err, failed.stdout, failed.stderr], "the command's output")
    assert_no_secret(database_texts(home), "the instance's files")
    assert_no_secret(storage.texts(), "stored objects, their keys, Parquet rows and URLs")
