"""A real `dagster dev` (webserver + daemon + code server) for end-to-end tests.

Import the fixture into a test module with
``from nasa_assets_tests.live import fixture_live_dagster  # noqa: F401`` and request it as
``live_dagster``.
One instance per test module: a free port, a temporary DAGSTER_HOME holding a copy of the repo's
dagster.yaml, the NASA double (in this pytest process, reached over 127.0.0.1) and a fresh bucket
on the moto server. Logs go to ``<tmp>/dagster-dev.log``; their tail is in every failure message.

The processes run in a temporary working directory rather than the repo root: Dagster's CLIs
load ``.env`` from the working directory and let it override the environment, so a developer's
``.env`` (a real bucket, a real API key) could otherwise reach the tests. The code is found
through PYTHONPATH; the workspace file is the repo's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pandas as pd
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from nasa_assets_tests.nasa_double import NasaDouble

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = str(ROOT / "workspace.yaml")
LOCATION = "nasa_assets"
REPOSITORY = "__repository__"
PREFIX = "moon_dataset"
TOTAL_HITS = 250  # pages 0001-0003, the last one half full
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on PythonError { message }
  }
}
"""
RUN_ERRORS_QUERY = """
query RunErrors($runId: ID!) {
  logsForRun(runId: $runId, limit: 500) {
    ... on EventConnection { events { __typename ... on MessageEvent { message level } } }
  }
}
"""
LOCATION_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass


@dataclass
class LiveDagster:
    port: int
    home: Path
    workdir: Path
    env: dict
    double: NasaDouble
    bucket: str
    s3: object
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- logs -------------------------------------------------------------------------------

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- the CLI, with the same instance and settings -----------------------------------------

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "dagster", *args], cwd=self.workdir, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        assert proc.returncode == 0, (
            f"dagster {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
        return proc

    # -- GraphQL ----------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=30)

    def runs(self, tags: dict[str, str] | None = None) -> list[dict]:
        run_filter = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        result = self.graphql(RUNS_QUERY, {"filter": run_filter})["runsOrError"]
        assert result["__typename"] == "Runs", result
        return [
            {"run_id": r["runId"], "job": r["jobName"], "status": r["status"],
             "tags": {t["key"]: t["value"] for t in r["tags"]}}
            for r in result["results"]
        ]

    def run_errors(self, run_id: str) -> list[str]:
        events = self.graphql(RUN_ERRORS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        return [e["message"] for e in events if e.get("level") in ("ERROR", "CRITICAL")][-10:]

    def wait_for_run(self, run_id: str, timeout: float = 180) -> str:
        """Poll the run's status through DagsterGraphQLClient until it ends; its final status."""
        client = self.client()
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            try:
                status = client.get_run_status(run_id).value
            except DagsterGraphQLClientError as error:  # not visible yet (just submitted)
                status = f"unknown ({type(error).__name__})"
            if status in TERMINAL:
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {timeout} s\n{self.log_tail()}")

    def wait_until(self, what: str, probe, timeout: float):
        """The first truthy value of probe(), polled every second; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.log_tail()}")

    def assert_success(self, run_id: str, timeout: float = 180) -> None:
        status = self.wait_for_run(run_id, timeout)
        assert status == "SUCCESS", (
            f"run {run_id} {status}: {self.run_errors(run_id)}\n{self.log_tail()}"
        )

    # -- the bucket ------------------------------------------------------------------------

    def keys(self) -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def table(self, name: str, page: str, dataset: str = "") -> pd.DataFrame:
        """A page table of moon (or of `dataset`, in its folder)."""
        root = "/".join(filter(None, [PREFIX, dataset]))
        body = self.s3.get_object(Bucket=self.bucket, Key=f"{root}/{name}/{page}.parquet")["Body"]
        return pd.read_parquet(io.BytesIO(body.read()))

    def assert_page_stored(self, page: str, dataset: str = "") -> pd.DataFrame:
        """The page's tables are in the bucket, and every image its moon_images table lists; of
        moon, or of `dataset` (a name of NASA_DATASETS_FILE) in its folder."""
        root = "/".join(filter(None, [PREFIX, dataset]))
        keys = self.keys()
        for name in ("search_results", "sampled_manifest", "moon_images", "rejected"):
            assert f"{root}/{name}/{page}.parquet" in keys, sorted(keys)[:20]
        images = self.table("moon_images", page, dataset)
        statuses = set(images["status"])
        assert statuses <= {"stored", "already_stored"}, images[["nasa_id", "status", "error"]]
        sizes = {o: self.s3.head_object(Bucket=self.bucket, Key=f"{root}/{o}")["ContentLength"]
                 for o in images["image_key"]}
        assert sizes == dict(zip(images["image_key"], images["bytes"]))
        for uri, key in zip(images["image_uri"], images["image_key"]):
            assert uri == f"s3://{self.bucket}/{root}/{key}"
        return images


def _env(home: Path, double: NasaDouble, endpoint: str, bucket: str, settings: dict) -> dict:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("NASA_", "S3_", "DAGSTER_", "AWS_ENDPOINT_URL", "SEARCH_RESULT_",
                             "DOWNLOAD_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        NASA_API_BASE_URL=double.base_url,
        NASA_ALLOWED_HOSTS=double.host,
        S3_BUCKET_NAME=bucket,
        S3_KEY_PREFIX=PREFIX,
        AWS_ENDPOINT_URL=endpoint,
        SEARCH_RESULT_SAMPLING_FACTOR="4",  # about 12 images per full page: quick runs
        DOWNLOAD_CONCURRENCY="8",
        NASA_SENSOR_INTERVAL_SECONDS="5",
        # The sensor test counts the runs of a change; repairs have their own live test
        # (test_live_repair.py), which turns them on.
        NASA_REPAIR_MAX_RUNS_PER_TICK="0",
    )
    env.update(settings)
    return env


def _wait_until_ready(live: LiveDagster, proc: subprocess.Popen, timeout: float = 120) -> None:
    """The webserver answers and the code location has loaded (or failed to: then say why)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}\n{live.log_tail()}")
        try:
            if requests.get(f"{live.url}/server_info", timeout=2).status_code == 200:
                workspace = live.graphql(LOCATION_QUERY)["workspaceOrError"]
                entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
                entry = entries.get(LOCATION)
                last = json.dumps(entry)
                if entry and entry["loadStatus"] == "LOADED":
                    error = entry["locationOrLoadError"]
                    if error and error["__typename"] == "PythonError":
                        raise RuntimeError(f"code location failed to load: {error['message']}")
                    return
        except requests.RequestException as error:
            last = type(error).__name__
        time.sleep(0.5)
    raise RuntimeError(f"dagster dev not ready after {timeout} s ({last})\n{live.log_tail()}")


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Children inherit an ignored SIGINT (pytest started in the background by a script), and
    then `dagster dev` cannot be stopped cleanly; a Python-level handler is reset by exec."""
    previous = signal.getsignal(signal.SIGINT)
    if previous != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def running_dagster(s3_endpoint: str, base: Path, **settings: str) -> Iterator[LiveDagster]:
    """Start `dagster dev` under `base` (home, working directory, log) and stop it on exit;
    `settings` override the project settings of the processes."""
    home, workdir = base / "dagster_home", base / "cwd"
    home.mkdir()
    workdir.mkdir()
    shutil.copy(ROOT / "dagster.dev.yaml", home / "dagster.yaml")

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"nasa-live-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    double = NasaDouble(total_hits=TOTAL_HITS).start()
    port = free_port()
    env = _env(home, double, s3_endpoint, bucket, settings)
    live = LiveDagster(port, home, workdir, env, double, bucket, s3, base / "dagster-dev.log")
    with open(live.log_path, "wb") as log, _sigint_not_ignored():
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", WORKSPACE,
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=workdir, env=live.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until_ready(live, proc)
        yield live
    finally:
        # SIGINT is dagster dev's clean shutdown (it stops the webserver, daemon and code server).
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(timeout=10)
        _kill_group(proc.pid)  # anything of the session left behind (e.g. a run worker)
        double.stop()


@pytest.fixture(scope="module", name="live_dagster")
def fixture_live_dagster(
    s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveDagster]:
    """A running `dagster dev` against the NASA double and a fresh moto bucket."""
    with running_dagster(s3_server, tmp_path_factory.mktemp("live_dagster")) as live:
        yield live
