"""Each way of ingesting pages, run as a user would run it and measured end to end.

Every path gets its own bucket on the one moto server and its own DAGSTER_HOME, so each starts
from nothing; the NASA double is shared and its request counts are reset before each path.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from nasa_assets_tests.bench.procs import (
    PYTHON,
    ROOT,
    DoubleControl,
    Measured,
    TreeSampler,
    free_port,
    run_measured,
    tail,
)
from nasa_assets_tests.bench.report import PathResult

PREFIX = "moon_dataset"
WORKSPACE = ROOT / "workspace.yaml"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
PAGE_STEPS = "search_results,sampled_manifest,moon_images"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
DATASET_JOB = "moon_dataset_job"  # `python -m nasa_assets run` rebuilds the dataset in a run of its own


@dataclass
class Bench:
    """What every path shares: the servers, a work folder, and the run's settings."""

    workdir: Path
    double_url: str
    moto_url: str
    s3: object
    control: DoubleControl
    concurrency: int
    timeout: float = 1800

    def bucket(self, name: str) -> str:
        bucket = f"bench-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        self.s3.create_bucket(Bucket=bucket)
        return bucket

    def home(self, name: str, source: Path | None = None) -> Path:
        home = self.workdir / f"home-{name}"
        home.mkdir(parents=True)
        if source is not None:
            shutil.copy(source, home / "dagster.yaml")
        else:
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        # The instance's databases exist before timing, as in a DAGSTER_HOME used before (like
        # `make run`'s .dagster_home); a first-ever run also creates them, once.
        import dagster as dg
        from dagster._core.instance.ref import InstanceRef

        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
            pass
        return home

    def env(self, bucket: str, home: Path) -> dict:
        """The project's settings for one path; nothing of the caller's NASA/S3/AWS/Dagster setup
        leaks in (a developer's real bucket or API key must not be used)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NASA_", "S3_", "DAGSTER_", "AWS_", "DOWNLOAD_", "SEARCH_RESULT_"))}
        missing = str(self.workdir / "no-aws-config")
        env.update(
            NASA_API_BASE_URL=self.double_url, NASA_ALLOWED_HOSTS=self.double_url.split("://", 1)[1],
            S3_BUCKET_NAME=bucket, S3_KEY_PREFIX=PREFIX, AWS_ENDPOINT_URL=self.moto_url,
            AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=missing, AWS_SHARED_CREDENTIALS_FILE=missing, AWS_EC2_METADATA_DISABLED="true",
            DAGSTER_HOME=str(home), DOWNLOAD_CONCURRENCY=str(self.concurrency),
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
        )
        return env

    def count(self, bucket: str, prefix: str, suffixes: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif")) -> int:
        paginator = self.s3.get_paginator("list_objects_v2")
        return sum(1 for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                   for obj in page.get("Contents", []) if obj["Key"].lower().endswith(suffixes))

    def measure(self, name: str, argv: list[str], env: dict, on_line=None) -> Measured:
        self.control.reset()
        return run_measured(argv, env, self.workdir, self.workdir / f"{name}.log", self.timeout, on_line)


def page_range(first: int, last: int) -> str:
    return f"{first:04d}...{last:04d}"


def _result(name: str, command: str, measured: Measured, images: int, counts: dict) -> PathResult:
    result = PathResult(name, command, images, measured.seconds, measured.peak_rss_mb,
                        measured.peak_pss_kb / 1024, measured.cpu_seconds, counts,
                        rss_by_step={k: v / 1024 for k, v in measured.phase_peaks.items()})
    if measured.returncode != 0:
        result.error = f"exit {measured.returncode}: {measured.tail(6)}"
    return result


# --------------------------------------------------------------------------------------------
# The paths
# --------------------------------------------------------------------------------------------


def sequential(bench: Bench, pages: int) -> tuple[PathResult, PathResult | None]:
    """The sequential loop over `pages`; also its first 5 pages (500 images) read off on the way."""
    bucket = bench.bucket("seq")
    at: dict[int, tuple[float, int]] = {}
    started = time.perf_counter()

    def on_line(line: str, sampler: TreeSampler) -> None:
        parts = line.split()
        if len(parts) == 5 and parts[0] == "page" and parts[2] == "done":
            at[int(parts[1])] = (time.perf_counter() - started, int(parts[4]))

    argv = [PYTHON, "-m", "nasa_assets_tests.bench.baseline", "--double", bench.double_url,
            "--s3", bench.moto_url, "--bucket", bucket, "--pages", str(pages)]
    measured = bench.measure("sequential", argv, bench.env(bucket, bench.home("seq")), on_line)
    result = _result("a sequential requests + boto3 loop", "python -m nasa_assets_tests.bench.baseline",
                     measured, bench.count(bucket, "baseline/images/"), bench.control.counts())
    result.note = "one connection, one request at a time"
    five = None
    if 5 in at and pages > 5:
        seconds, images = at[5]
        five = PathResult("the sequential loop, first 5 pages", result.command, images, seconds,
                          result.peak_rss_mb, result.peak_pss_mb, note="read off the run above")
    return result, five


def cli(bench: Bench, first: int, last: int, name: str = "cli", dataset: bool = False) -> PathResult:
    bucket = bench.bucket(name)
    home = bench.home(name)
    pages = f"{first}-{last}" if first != last else str(first)
    argv = [PYTHON, "-m", "nasa_assets", "run", "--pages", pages]
    if not dataset:
        argv.append("--no-dataset")
    measured = bench.measure(name, argv, bench.env(bucket, home))
    result = _result(f"`python -m nasa_assets run --pages {pages}" + ("" if dataset else " --no-dataset") + "`",
                     shlex.join(["python", *argv[1:]]), measured, bench.count(bucket, f"{PREFIX}/images/"),
                     bench.control.counts())
    result.phases = run_phases(home, measured.seconds)
    result.events = event_counts(home)
    result.bucket = bucket
    return result


def materialize(bench: Bench, first: int, last: int, name: str = "materialize") -> PathResult:
    bucket = bench.bucket(name)
    home = bench.home(name)
    argv = [PYTHON, "-m", "dagster", "asset", "materialize", "-m", "nasa_assets.definitions",
            "--select", PAGE_STEPS, "--partition-range", page_range(first, last)]
    measured = bench.measure(name, argv, bench.env(bucket, home))
    result = _result(f"`dagster asset materialize ... --partition-range {page_range(first, last)}`",
                     shlex.join(["dagster", *argv[3:]]), measured, bench.count(bucket, f"{PREFIX}/images/"),
                     bench.control.counts())
    result.phases = run_phases(home, measured.seconds)
    result.events = event_counts(home)
    return result


# --------------------------------------------------------------------------------------------
# A live `dagster dev`
# --------------------------------------------------------------------------------------------

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { __typename ... on Runs { results { runId status } } }
}
"""
LOCATION = "nasa_assets"
LAUNCH_MUTATION = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  }
}
"""
LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


class DagsterDev:
    """`dagster dev` (webserver, daemon, code server) in its own session and DAGSTER_HOME."""

    def __init__(self, bench: Bench, dequeue_interval: int | None = None):
        self.bench = bench
        self.bucket = bench.bucket("dev")
        # The repo's own instance file: its run queue and pools are what `make dev` users get.
        self.home = bench.home("dev", ROOT / "dagster.dev.yaml")
        self.instance_note = "the repo's dagster.dev.yaml"
        if dequeue_interval is not None:  # an experiment: how long queued runs wait for the daemon
            import yaml

            instance_file = self.home / "dagster.yaml"
            config = yaml.safe_load(instance_file.read_text())
            config.setdefault("run_queue", {})["dequeue_interval_seconds"] = dequeue_interval
            instance_file.write_text(yaml.safe_dump(config))
            self.instance_note += f" with run_queue.dequeue_interval_seconds: {dequeue_interval}"
        self.env = bench.env(self.bucket, self.home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = bench.workdir / "dagster-dev.log"
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = 0.0
        self.idle_rss_mb = 0.0
        self.stored = 0  # images in the bucket after the previous launch

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=30)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(str(body["errors"])[:500])
        return body["data"]

    def __enter__(self) -> DagsterDev:
        started = time.perf_counter()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "dagster", "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.bench.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout=180)
        except BaseException:
            self.__exit__()
            raise
        self.startup_seconds = time.perf_counter() - started
        time.sleep(3)  # let the daemon's first ticks pass: idle, not start-up, memory
        sampler = TreeSampler(sessions={self.proc.pid})
        self.idle_rss_mb = sampler.sample().rss_kb / 1024
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}: {tail(self.log)}")
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).status_code == 200:
                    entries = self.graphql(LOCATION_QUERY)["workspaceOrError"].get("locationEntries", [])
                    for entry in entries:
                        error = entry["locationOrLoadError"] or {}
                        if entry["loadStatus"] == "LOADED" and error.get("__typename") == "PythonError":
                            raise RuntimeError(f"code location failed to load: {error['message'][:500]}")
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"dagster dev not ready after {timeout:.0f} s: {tail(self.log)}")

    def __exit__(self, *exc) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # dagster dev's clean shutdown
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of its session left behind
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=10)

    def launch(self, first: int, last: int, name: str, via: str = "cli") -> PathResult:
        """A run of pages first..last, timed from the launch until the run is seen finished, with
        the memory of dagster dev's whole tree (plus the launching command's). `via` "cli" is
        `dagster job launch` with range tags; "graphql" is the mutation the UI's Launch button
        sends, which needs no code loaded by the launcher."""
        bench = self.bench
        bench.control.reset()
        marker = uuid.uuid4().hex[:12]
        tags = {RANGE_START: f"{first:04d}", RANGE_END: f"{last:04d}", "bench/launch": marker}
        argv = [PYTHON, "-m", "dagster", "job", "launch", "-j", "moon_images_job", "-w", str(WORKSPACE),
                "--tags", json.dumps(tags)]
        log = bench.workdir / f"{name}.log"
        status, launched, run_id, launcher = "", None, "", None
        with open(log, "wb") as out, TreeSampler(sessions={self.proc.pid}) as sampler:
            started, started_epoch = time.perf_counter(), time.time()
            if via == "cli":
                launcher = subprocess.Popen(argv, cwd=bench.workdir, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                sampler.watch(launcher.pid)
            else:
                status = self._launch_graphql(tags)
                launched = time.perf_counter() - started
            deadline = time.monotonic() + bench.timeout
            while not status.startswith("launch") and time.monotonic() < deadline:
                if launched is None and launcher.poll() is not None:
                    launched = time.perf_counter() - started
                    if launcher.returncode != 0:
                        status = f"launch exited {launcher.returncode}"
                        break
                runs = self.graphql(RUNS_QUERY, {"filter": {"tags": [{"key": "bench/launch", "value": marker}]}})
                results = runs["runsOrError"].get("results", [])
                if results:
                    run_id, status = results[0]["runId"], results[0]["status"]
                    if status in TERMINAL:
                        break
                time.sleep(0.1)
            seconds = time.perf_counter() - started
            if launcher is not None and launcher.poll() is None:
                launcher.wait(timeout=60)
        images = bench.count(self.bucket, f"{PREFIX}/images/")
        how = "`dagster job launch`" if via == "cli" else "the UI's launch (GraphQL)"
        result = PathResult(f"{how} into `dagster dev`, pages {page_range(first, last)}",
                            shlex.join(["dagster", *argv[3:]]).replace(str(ROOT) + "/", "")
                            if via == "cli" else "GraphQL launchPipelineExecution (the UI's Launch Run)",
                            seconds=seconds, peak_rss_mb=sampler.peak.rss_kb / 1024,
                            peak_pss_mb=sampler.peak_pss_kb / 1024, requests=bench.control.counts())
        result.images, self.stored = images - self.stored, images
        worker = sampler.peak_of("spawn_main") / 1024  # the code server starts it by multiprocessing spawn
        result.note = (f"launch to {status or 'no run seen'}; of the peak: the run worker {worker:.0f} MB, "
                       f"dagster dev idle {self.idle_rss_mb:.0f} MB; {self.instance_note}")
        if status != "SUCCESS":
            result.error = f"run {run_id or '?'} {status or 'not seen'}: {tail(log, 6)} {tail(self.log, 6)}"
        phases = run_phases(self.home, seconds, run_id=run_id, launched_at=started_epoch)
        if launched is not None:  # in parallel with the phases above, not one of them
            phases[f"({how} itself returned after"] = launched
        result.phases = phases
        return result

    def _launch_graphql(self, tags: dict[str, str]) -> str:
        data = self.graphql(LAUNCH_MUTATION, {"executionParams": {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                         "jobName": "moon_images_job"},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }})["launchPipelineExecution"]
        if data["__typename"] != "LaunchRunSuccess":
            return f"launch failed: {data.get('message') or data['__typename']}"
        return ""


# --------------------------------------------------------------------------------------------
# Where the time goes: the run's own record in the instance
# --------------------------------------------------------------------------------------------


def event_counts(home: Path) -> dict[str, int]:
    """Events Dagster stored for the latest page run and the dataset rebuild after it (each one is
    a write to the instance's storage, part of the run's time)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    counts: dict[str, int] = {}
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            for record in instance.get_run_records(limit=10):  # newest first
                job = record.dagster_run.job_name
                if job not in counts:
                    counts[job] = len(instance.all_logs(record.dagster_run.run_id))
                if job != DATASET_JOB:
                    break
    except Exception:  # a measurement aid: never the reason the bench fails
        return {}
    return counts


def run_phases(home: Path, wall: float, run_id: str = "", launched_at: float | None = None) -> dict[str, float]:
    """The page run's parts: queue and run-worker start, each step, what followed; and for a
    command that runs in process, the command's time outside the run (start-up, imports, exit)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    phases: dict[str, float] = {}
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            if run_id:
                records = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))
            else:
                recent = instance.get_run_records(limit=10)  # newest first
                records = [r for r in recent if r.dagster_run.job_name != DATASET_JOB][:1]
            if not records:
                return phases
            record = records[0]
            # `python -m nasa_assets run` rebuilds moon_dataset in a run of its own afterwards.
            dataset_runs = [] if run_id else [
                r for r in recent if r.dagster_run.job_name == DATASET_JOB
                and r.create_timestamp >= record.create_timestamp and r.start_time and r.end_time]
            dataset_steps = [s for r in dataset_runs for s in instance.get_run_step_stats(r.dagster_run.run_id)
                             if s.start_time and s.end_time]
            steps = sorted((s for s in instance.get_run_step_stats(record.dagster_run.run_id)
                            if s.start_time and s.end_time), key=lambda s: s.start_time)
            kinds = dg.DagsterEventType
            enqueued = starting = worker = None
            for entry in instance.all_logs(record.dagster_run.run_id, of_type={
                    kinds.RUN_ENQUEUED, kinds.RUN_STARTING, kinds.ENGINE_EVENT}):
                event = entry.dagster_event
                if event.event_type == kinds.RUN_ENQUEUED:
                    enqueued = entry.timestamp
                elif event.event_type == kinds.RUN_STARTING:
                    starting = entry.timestamp
                elif worker is None and "Started process for run" in (event.message or ""):
                    worker = entry.timestamp  # logged by the run worker once it has loaded the code
    except Exception as error:  # a measurement aid: never the reason the bench fails
        return {f"(run record unreadable: {type(error).__name__})": 0.0}
    start, end = record.start_time, record.end_time
    if launched_at is not None and start:
        created = record.create_timestamp.timestamp()
        phases["launch to run created (the launcher loads the code)"] = created - launched_at
        if enqueued and starting and worker and created <= enqueued <= starting <= worker <= start:
            phases["created to enqueued (planned events)"] = enqueued - created
            phases["queued (until the daemon dequeues it)"] = starting - enqueued
            phases["run worker start-up (new process, imports, code, instance)"] = worker - starting
            phases["worker ready to run start"] = start - worker
        else:
            phases["created to started (queue, run worker start-up)"] = start - created
    elif start and end:
        rebuild = sum(r.end_time - r.start_time for r in dataset_runs)
        phases["outside the runs (process start-up, imports, exit)"] = wall - (end - start) - rebuild
    if start and steps:
        phases["run start to first step"] = steps[0].start_time - start
    for step in steps:
        phases[step.step_key] = step.end_time - step.start_time
    if end and steps:
        phases["last step to run end"] = end - steps[-1].end_time
    if launched_at is None and start and end and dataset_runs:
        phases[f"{DATASET_JOB} run"] = rebuild
        for step in dataset_steps:
            phases[f"({step.step_key}"] = step.end_time - step.start_time
    if launched_at is not None and end:
        phases["run end to success seen"] = launched_at + wall - end
    return phases
