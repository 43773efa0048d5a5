"""The production instance (deploy/dagster.yaml) on this machine: PostgreSQL storage, the queued run
coordinator, the nasa_api pool and S3 compute logs, with `dagster-webserver` and `dagster-daemon`
as two processes and the DefaultRunLauncher standing in for Kubernetes/ECS.

A backfill of 6 pages is submitted with `dagster job backfill` (one run per page); the daemon
dequeues and launches the runs. The contract: every run succeeds, never more search steps run at
once than the nasa_api pool allows (1 here), never more runs than max_concurrent_runs, and every
page's table and every run's compute logs land in the (moto) S3 server.

PostgreSQL is a throwaway cluster (initdb + pg_ctl on a free port) started by this module from
Debian's server binaries, which .ci/run installs; the module skips only where they are absent.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from nasa_assets_tests.helpers import skip_unless_required
from nasa_assets_tests.nasa_double import NasaDouble

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
PAGES = ["0001", "0002", "0003", "0004", "0005", "0006"]
POOL = "nasa_api"
POOL_LIMIT = 1
# Seconds for all 6 runs: about 80 s on an idle machine (run start-up dominates); generous so a
# loaded CI machine fails only on a real hang.
RUNS_TIMEOUT = 300
PG_DB = "dagster_test"
PG_USER = "dagster"


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres: on PATH, or Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    return Path(newest).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str


def _as_owner(owner: pwd.struct_passwd | None) -> dict:
    # initdb and postgres refuse to run as root: run them as the cluster owner instead.
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _cluster_owner() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):  # Debian's package creates `postgres`
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root, and no `postgres` or `nobody` user exists to own the cluster")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _pg_bindir()
    if bindir is None:
        skip_unless_required(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package (.ci/run does)"
        )
    owner = _cluster_owner()
    base = Path(tempfile.mkdtemp(prefix="nasa-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    password = secrets.token_hex(12)
    (base / "pwfile").write_text(password + "\n")
    if owner is not None:
        for path in (base, sock, base / "pwfile"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    run = dict(cwd=base, capture_output=True, text=True, timeout=120, **_as_owner(owner))

    def check(proc: subprocess.CompletedProcess, what: str) -> None:
        assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr}"

    port = None
    try:
        check(subprocess.run(
            [bindir / "initdb", "-D", data, "-U", PG_USER, f"--pwfile={base / 'pwfile'}",
             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"], **run,
        ), "initdb")
        for _ in range(3):  # a free port can be taken between picking and binding it
            port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
            started = subprocess.run(
                [bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options,
                 "start"], **run,
            )
            if started.returncode == 0:
                break
        else:
            check(started, f"pg_ctl start (log: {log.read_text()[-2000:] if log.exists() else ''})")
        check(subprocess.run(
            [bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, PG_DB],
            env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, timeout=60,
        ), "createdb")
        yield Postgres("127.0.0.1", port, PG_USER, password, PG_DB)
    finally:
        pidfile = data / "postmaster.pid"
        stopped = subprocess.run([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], **run)
        if stopped.returncode != 0 and pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


# -- Dagster processes -------------------------------------------------------------------------


def _executable(name: str) -> str:
    """A console script of the venv running the tests (dagster, dagster-webserver, ...)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name) or name


def _session_members(sid: int) -> list[int]:
    """Live processes (not zombies) whose session is `sid`: what start_new_session gave a tree."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session ...
            members.append(int(stat.split("/")[2]))
    return members


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> list[int]:
    """Stop a process started with start_new_session with `sig`; kill whatever of its session is
    still alive after that and return those pids (empty when it stopped cleanly)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 10
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    stray = _session_members(proc.pid)
    if stray or proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    return stray


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class Deployment:
    env: dict
    instance: object
    run_ids: list[str]
    webserver_port: int
    s3: object
    bucket: str
    logs_bucket: str
    limits: dict


@pytest.fixture(scope="module")
def deployment(postgres: Postgres, s3_server: str, tmp_path_factory) -> Iterator[Deployment]:
    from dagster import DagsterInstance

    tmp = tmp_path_factory.mktemp("production")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")  # the deploy file itself, unchanged

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket, logs_bucket = (f"nasa-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("data", "logs"))
    for name in (bucket, logs_bucket):
        s3.create_bucket(Bucket=name)

    double = NasaDouble(total_hits=len(PAGES) * 100).start()
    # Nothing of a developer's project settings or Dagster instance may leak into the processes.
    env = {k: v for k, v in os.environ.items() if not k.startswith((
        "NASA_", "S3_", "DAGSTER_", "AWS_ENDPOINT_URL", "SEARCH_RESULT_", "DOWNLOAD_CONCURRENCY",
        "MAX_IMAGE_BYTES", "MAX_REJECTED_FRACTION", "MAX_FAILED_FRACTION", "DATASET_"))}
    settings = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_USERNAME": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": postgres.db,
        "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "compute-logs",
        # S3ComputeLogManager has no endpoint_url in deploy/dagster.yaml: boto3 reads this one.
        "AWS_ENDPOINT_URL": s3_server,
        "NASA_API_BASE_URL": double.base_url,
        "NASA_ALLOWED_HOSTS": double.host,
        "S3_BUCKET_NAME": bucket,
        "S3_KEY_PREFIX": "moon_dataset",
        # 10 images a page instead of 100: this test is about the queue, not download volume.
        "SEARCH_RESULT_SAMPLING_FACTOR": "10",
    }
    env.update(settings)
    limits = yaml.safe_load(DEPLOY_YAML.read_text())["concurrency"]

    procs: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        cli = dict(cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        # The deploy step that sets the pool limit; it also creates the schema in Postgres.
        proc = subprocess.run(
            [_executable("dagster"), "instance", "concurrency", "set", POOL, str(POOL_LIMIT)], **cli
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

        port = _free_port()
        commands = {
            "webserver": [_executable("dagster-webserver"), "-w", "workspace.yaml",
                          "-h", "127.0.0.1", "-p", str(port)],
            "daemon": [_executable("dagster-daemon"), "run", "-w", "workspace.yaml"],
        }
        for name, argv in commands.items():
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                procs.append((name, subprocess.Popen(
                    argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                ), log))
        _wait_for_webserver(port, procs)

        proc = subprocess.run(
            [_executable("dagster"), "job", "backfill", "-j", "moon_images_job",
             "-w", "workspace.yaml", "--partitions", ",".join(PAGES), "--noprompt"], **cli
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        backfill_id = re.search(r"Launched backfill job `([^`]+)`", proc.stdout).group(1)

        with pytest.MonkeyPatch.context() as mp:
            for key, value in settings.items():
                mp.setenv(key, value)
            instance = DagsterInstance.from_config(str(home))
            try:
                run_ids = _wait_for_runs(instance, backfill_id, procs)
                yield Deployment(env, instance, run_ids, port, s3, bucket, logs_bucket, limits)
            finally:
                instance.dispose()
    finally:
        stray = {name: _stop(proc) for name, proc, _ in procs}
        double.stop()
    # Reached only when nothing failed above, so it cannot hide the first error.
    assert not any(stray.values()), f"processes left behind after SIGTERM: {stray}"


def _wait_for_webserver(port: int, procs, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc, log in procs:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{_tail(log)}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"webserver not serving after {timeout} s:\n{_tail(procs[0][2])}")


def _wait_for_runs(instance, backfill_id: str, procs) -> list[str]:
    from dagster import DagsterRunStatus, RunsFilter

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    runs_filter = RunsFilter(tags={"dagster/backfill": backfill_id})
    deadline = time.monotonic() + RUNS_TIMEOUT
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=runs_filter)
        if len(runs) == len(PAGES) and all(r.status in done for r in runs):
            return [r.run_id for r in runs]
        for name, proc, log in procs:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{_tail(log)}"
        time.sleep(1)
    states = {r.tags.get("dagster/partition"): r.status.value
              for r in instance.get_runs(filters=runs_filter)}
    pytest.fail(f"runs not finished after {RUNS_TIMEOUT} s: {states}\n{_tail(procs[1][2])}")


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (touching end and start do not overlap)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    return peak


# -- the contract ------------------------------------------------------------------------------


def test_every_run_of_the_backfill_succeeds(deployment: Deployment):
    from dagster import DagsterEventType, DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    instance = deployment.instance
    failures = {}
    for run_id in deployment.run_ids:
        run = instance.get_run_by_id(run_id)
        if run.status != DagsterRunStatus.SUCCESS:
            errors = [e.dagster_event.event_specific_data.error.message
                      for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]
            failures[run.tags.get("dagster/partition")] = (run.status.value, errors)
    assert not failures, failures
    partitions = sorted(
        instance.get_run_by_id(r).tags["dagster/partition"] for r in deployment.run_ids
    )
    assert partitions == PAGES
    # The webserver reads the same Postgres storage.
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    assert {client.get_run_status(r) for r in deployment.run_ids} == {DagsterRunStatus.SUCCESS}


def test_never_more_search_steps_at_once_than_the_pool_limit(deployment: Deployment):
    from dagster import DagsterEventType

    instance = deployment.instance
    assert instance.event_log_storage.get_concurrency_info(POOL).slot_count == POOL_LIMIT
    # Every run of the instance counts (the backfill's, and any a sensor may have started).
    intervals = []
    for run in instance.get_runs():
        events = instance.all_logs(
            run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS,
                                 DagsterEventType.STEP_FAILURE}
        )
        stamps = sorted(e.timestamp for e in events if e.dagster_event.step_key == "search_results")
        if stamps:
            intervals.append((stamps[0], stamps[-1] if len(stamps) > 1 else time.time()))
    assert len(intervals) >= len(PAGES)
    assert _max_overlap(intervals) == POOL_LIMIT, sorted(intervals)


def test_never_more_runs_at_once_than_max_concurrent_runs(deployment: Deployment):
    records = deployment.instance.get_run_records()  # every run of the instance
    assert {r.dagster_run.run_id for r in records} >= set(deployment.run_ids)
    intervals = [(r.start_time, r.end_time or time.time()) for r in records if r.start_time]
    limit = deployment.limits["runs"]["max_concurrent_runs"]
    assert 1 <= _max_overlap(intervals) <= limit, intervals


def test_every_page_is_stored_in_s3(deployment: Deployment):
    listed = deployment.s3.list_objects_v2(
        Bucket=deployment.bucket, Prefix="moon_dataset/moon_images/"
    )
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert keys == [f"moon_dataset/moon_images/{page}.parquet" for page in PAGES]


def test_compute_logs_of_every_run_are_in_s3(deployment: Deployment):
    paginator = deployment.s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=deployment.logs_bucket, Prefix="compute-logs/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    missing = [r for r in deployment.run_ids if not any(r in key for key in keys)]
    assert not missing, f"no compute logs for runs {missing}; keys: {keys[:10]}"
