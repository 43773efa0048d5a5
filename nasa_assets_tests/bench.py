"""`make bench`: how fast, and in how much memory, the project ingests images (not a test).

One run on this machine, everything on 127.0.0.1:

1. a plain sequential baseline on N pages (search page, then per item: collection.json when the
   item does not list its renditions, download, put_object; one connection): the reference;
2. the project on the same pages in ONE command as a user would (`python -m nasa_assets run
   --pages 1-N`, start-up included): wall time, images/s, MB/s, API requests, peak RSS;
3. the moon_images step's own rate (images / step duration, from the run's events in a
   temporary DAGSTER_HOME) against the baseline's and the ideal bound (concurrency / delay);
4. the same pages again: the step's time and the number of image downloads (must be 0);
5. large images (60 MB by default) at DOWNLOAD_CONCURRENCY: peak RSS of the run.

The NASA double and the moto S3 server run as subprocesses, so they do not share the measured
process's GIL (they do share the machine's cores). Results: a Markdown table on stdout and in
bench-results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STEP = "moon_images"
MB = 1e6


# --------------------------------------------------------------------------------------------
# Servers (subprocesses)
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A subprocess serving HTTP on 127.0.0.1, stopped (and reaped) on exit."""

    def __init__(self, name: str, argv: list[str], log: Path):
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output = open(log, "wb")  # the server's own log, kept with --keep

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            if proc is not None and proc.stdout:
                proc.stdout.close()
            self.output.close()


def start_double(total_hits: int, delay: float, image_bytes: int, log: Path) -> Server:
    argv = [PYTHON, "-m", "nasa_assets_tests.nasa_double", "--port", "0", "--total-hits", str(total_hits),
            "--delay", str(delay), "--image-bytes", str(image_bytes)]
    server = Server("NASA double", argv, log)
    server.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=server.output, text=True)
    deadline = time.monotonic() + 60
    prefix = "NASA double listening on "
    while time.monotonic() < deadline:
        ready, _, _ = select.select([server.proc.stdout], [], [], 0.5)
        if ready:
            line = server.proc.stdout.readline()
            if line.startswith(prefix):
                server.url = line[len(prefix):].strip()
                return server
            if not line:
                break
        if server.proc.poll() is not None:
            break
    server.stop()
    raise RuntimeError(f"the NASA double did not start; see {log}")


def start_moto(log: Path) -> Server:
    port = _free_port()
    argv = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = Server("moto S3", argv, log)
    server.proc = subprocess.Popen(argv, cwd=ROOT, stdout=server.output, stderr=subprocess.STDOUT)
    server.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            requests.get(f"{server.url}/moto-api/", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the moto server did not start; see {log}")


class DoubleControl:
    """The double's HTTP control surface: request counts by kind."""

    def __init__(self, url: str):
        self.url = url

    def reset(self) -> None:
        requests.post(f"{self.url}/__double__/reset_counts", timeout=10).raise_for_status()

    def configure(self, **settings) -> None:
        requests.post(f"{self.url}/__double__/config", json=settings, timeout=10).raise_for_status()

    def counts(self) -> dict[str, int]:
        response = requests.get(f"{self.url}/__double__/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json()["counts"])


# --------------------------------------------------------------------------------------------
# 1. The sequential baseline
# --------------------------------------------------------------------------------------------


def _baseline_image_url(session: requests.Session, item: dict, rendition: str = "large") -> str | None:
    """The simplest way to the item's image: its own links (format 1.1), else collection.json."""
    wanted = f"~{rendition}."
    for link in item.get("links", []):
        if wanted in link.get("href", "") and "size" in link:
            return link["href"]
    response = session.get(item["href"], timeout=60)
    if response.status_code != 200:
        return None
    urls = [u for u in response.json() if isinstance(u, str)]
    return next((u for u in urls if wanted in u), next((u for u in urls if u.endswith(".jpg")), None))


def run_baseline(double_url: str, s3, bucket: str, prefix: str, pages: int) -> dict:
    session = requests.Session()
    images = size = 0
    started = time.perf_counter()
    for page in range(1, pages + 1):
        body = session.get(f"{double_url}/search", timeout=60, params={
            "q": "moon", "media_type": "image", "page": page, "page_size": 100}).json()
        for item in body["collection"]["items"]:
            url = _baseline_image_url(session, item)
            if url is None:
                continue
            response = session.get(url, timeout=60)
            if response.status_code != 200:
                continue
            nasa_id = item["data"][0]["nasa_id"]
            s3.put_object(Bucket=bucket, Key=f"{prefix}/images/{nasa_id}.jpg", Body=response.content,
                          ContentType="image/jpeg")
            images += 1
            size += len(response.content)
    seconds = time.perf_counter() - started
    return {"images": images, "bytes": size, "seconds": seconds}


# --------------------------------------------------------------------------------------------
# 2-5. The project, one command per run
# --------------------------------------------------------------------------------------------


@dataclass
class ProjectRun:
    returncode: int
    seconds: float
    peak_rss_kb: int
    step_seconds: float | None = None
    stored: int = 0
    already_stored: int = 0
    failed: int = 0
    bytes_stored: int = 0
    counts: dict = field(default_factory=dict)
    log: Path | None = None
    cpu: dict = field(default_factory=dict)  # CPU seconds during the run: project, double, moto
    phases: dict = field(default_factory=dict)  # parts of the moon_images step, seconds

    def phases_line(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases.items())

    def cpu_line(self) -> str:
        used = " + ".join(f"{name} {seconds:.1f}" for name, seconds in self.cpu.items())
        return (f"{used} = {sum(self.cpu.values()):.1f} CPU s in {self.seconds:.1f} s wall "
                f"({os.cpu_count()} cores: {os.cpu_count() * self.seconds:.1f} CPU s available)")


def project_env(double: Server, moto_url: str, bucket: str, prefix: str, home: Path, concurrency: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NASA_", "S3_", "DAGSTER_", "AWS_"))}
    missing = str(home / "no-aws-config")
    env.update(
        NASA_API_BASE_URL=double.url, NASA_ALLOWED_HOSTS=double.url.split("://", 1)[1],
        S3_BUCKET_NAME=bucket, S3_KEY_PREFIX=prefix, AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=missing, AWS_SHARED_CREDENTIALS_FILE=missing, AWS_EC2_METADATA_DISABLED="true",
        DAGSTER_HOME=str(home), DOWNLOAD_CONCURRENCY=str(concurrency), PYTHONPATH=str(ROOT),
    )
    return env


def new_dagster_home(parent: Path, name: str) -> Path:
    home = parent / name
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def run_project(env: dict, pages: str, workdir: Path, control: DoubleControl, label: str,
                servers: dict[str, Server]) -> ProjectRun:
    """`python -m nasa_assets run --pages ...` as a child; its own peak RSS and CPU via wait4."""
    control.reset()
    log = workdir / f"{label}.log"
    argv = [PYTHON, "-m", "nasa_assets", "run", "--pages", pages]
    cpu_before = {name: server.cpu_seconds() for name, server in servers.items()}
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = ProjectRun(proc.returncode, seconds, usage.ru_maxrss, counts=control.counts(), log=log)
    run.cpu = {"project": usage.ru_utime + usage.ru_stime}
    run.cpu |= {name: server.cpu_seconds() - cpu_before[name] for name, server in servers.items()}
    _read_run_events(Path(env["DAGSTER_HOME"]), run)
    return run


def _read_run_events(home: Path, run: ProjectRun) -> None:
    """The moon_images step's duration and counts, from the newest run in the instance that has
    one (the command may launch other runs after it, e.g. the dataset's consolidation)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    kinds = dg.DagsterEventType
    wanted = {kinds.STEP_START, kinds.STEP_INPUT, kinds.STEP_OUTPUT, kinds.STEP_SUCCESS, kinds.ASSET_MATERIALIZATION}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for candidate in instance.get_runs(limit=10):
            events = instance.all_logs(candidate.run_id, of_type=wanted)
            if any(entry.step_key == STEP for entry in events):
                break
        else:
            return
        times = {}
        for entry in events:
            if entry.step_key != STEP:
                continue
            kind = entry.dagster_event.event_type
            if kind == kinds.ASSET_MATERIALIZATION:
                # One materialization per page, each with that page's counts.
                meta = {k: v.value for k, v in entry.asset_materialization.metadata.items()}
                run.stored += int(meta.get("stored", 0))
                run.already_stored += int(meta.get("already_stored", 0))
                run.failed += int(meta.get("failed", 0))
                run.bytes_stored += int(meta.get("bytes_stored", 0))
            else:
                times.setdefault(kind, entry.timestamp)  # the first STEP_OUTPUT: the table's
        if kinds.STEP_START in times and kinds.STEP_SUCCESS in times:
            run.step_seconds = times[kinds.STEP_SUCCESS] - times[kinds.STEP_START]
        if len(times) == 4:
            run.phases = {
                "inputs loaded by the IO manager": times[kinds.STEP_INPUT] - times[kinds.STEP_START],
                "asset body": times[kinds.STEP_OUTPUT] - times[kinds.STEP_INPUT],
                "tables written + Dagster events": times[kinds.STEP_SUCCESS] - times[kinds.STEP_OUTPUT],
            }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{os.cpu_count()} cores ({model}), {platform.machine()}{mem}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str, str]] = []
        self.missed: list[str] = []

    def add(self, metric: str, value: str, target: str = "", met: bool | None = None) -> None:
        if met is False:
            self.missed.append(metric)
        self.rows.append((metric, value, target, "" if met is None else ("yes" if met else "**no**")))

    def markdown(self) -> str:
        lines = ["| metric | value | target | met? |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(r)} |" for r in self.rows]
        return "\n".join(lines)


def _rate(n: float, seconds: float | None) -> float:
    return n / seconds if seconds else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5, help="pages of 100 images (default 5)")
    parser.add_argument("--total-hits", type=int, default=None, help="hits in the double (default 100 x pages, at least 500)")
    parser.add_argument("--delay", type=float, default=0.05, help="the double's delay per request, seconds")
    parser.add_argument("--image-bytes", type=int, default=300_000, help="size of the served images")
    parser.add_argument("--concurrency", type=int, default=16, help="DOWNLOAD_CONCURRENCY")
    parser.add_argument("--big-image-bytes", type=int, default=60_000_000, help="size in the memory run")
    parser.add_argument("--big-images", type=int, default=40, help="images in the memory run (one page)")
    parser.add_argument("--skip-big", action="store_true", help="skip the memory run")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "latest.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Dagster homes)")
    args = parser.parse_args(argv)
    total_hits = args.total_hits or max(500, 100 * args.pages)
    pages = f"1-{args.pages}"
    command = "python -m nasa_assets_tests.bench " + shlex.join(argv if argv is not None else sys.argv[1:])

    workdir = Path(tempfile.mkdtemp(prefix="nasa-bench-"))
    table = Table()
    try:
        failures = _bench(args, total_hits, pages, workdir, table)
    finally:
        if args.keep:
            print(f"bench: work folder kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    header = [
        "## Benchmark",
        "",
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine()}",
        f"- command: `{command.strip()}`",
        f"- setup: NASA double (subprocess) with {args.delay * 1000:.0f} ms per request and "
        f"{args.image_bytes / 1000:.0f} KB images, {total_hits} hits; moto S3 server (subprocess); "
        f"DOWNLOAD_CONCURRENCY={args.concurrency}",
        "",
    ]
    report = "\n".join(header) + "\n" + table.markdown() + "\n"
    if failures:
        report += "\n" + "\n".join(f"- FAILED: {f}" for f in failures) + "\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}")
    if failures:
        return 2
    return 1 if args.strict and table.missed else 0


def _bench(args, total_hits: int, pages: str, workdir: Path, table: Table) -> list[str]:
    failures: list[str] = []
    with start_moto(workdir / "moto.log") as moto, \
            start_double(total_hits, args.delay, args.image_bytes, workdir / "double.log") as double:
        env_creds = dict(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=moto.url, **env_creds)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        control = DoubleControl(double.url)

        # 1. baseline
        print(f"bench: sequential baseline on {args.pages} pages ...", flush=True)
        control.reset()
        base = run_baseline(double.url, s3, bucket, "baseline", args.pages)
        base_counts = control.counts()
        base_rate = _rate(base["images"], base["seconds"])
        table.add("baseline (sequential): images", f"{base['images']}")
        table.add("baseline: wall time", f"{base['seconds']:.1f} s")
        table.add("baseline: rate", f"{base_rate:.1f} images/s, {base['bytes'] / MB / base['seconds']:.1f} MB/s")
        table.add("baseline: requests to the double", f"{sum(base_counts.values())} "
                  f"({base_counts.get('search', 0)} search, {base_counts.get('collection', 0)} collection.json, "
                  f"{base_counts.get('image', 0)} image)")

        # 2./3. the project, first materialization
        home = new_dagster_home(workdir, "home")
        env = project_env(double, moto.url, bucket, "dataset", home, args.concurrency)
        print(f"bench: python -m nasa_assets run --pages {pages} ...", flush=True)
        servers = {"double": double, "moto": moto}
        first = run_project(env, pages, workdir, control, "first", servers)
        if first.returncode != 0:
            failures.append(f"first project run exited {first.returncode}: {_tail(first.log)}")
        images = first.stored
        speedup = base["seconds"] / first.seconds * (images / base["images"]) if base["images"] else 0
        table.add("project end to end: wall time (start-up included)", f"{first.seconds:.1f} s")
        table.add("project end to end: images stored", f"{images} ({first.failed} failed)")
        table.add("project end to end: rate", f"{_rate(images, first.seconds):.1f} images/s, "
                  f"{first.bytes_stored / MB / first.seconds:.1f} MB/s")
        table.add("project end to end: API (search) requests",
                  f"{first.counts.get('search', 0)} (+{first.counts.get('collection', 0)} collection.json, "
                  f"{first.counts.get('image', 0)} image downloads)")
        table.add("project end to end: peak RSS", f"{first.peak_rss_kb / 1024:.0f} MB")
        table.add("project end to end: CPU used", first.cpu_line())
        table.add("project end to end: speed-up over baseline", f"{speedup:.1f}x", ">= 2.5x", speedup >= 2.5)
        step_rate = _rate(images, first.step_seconds)
        ideal = args.concurrency / args.delay if args.delay else float("inf")
        table.add("moon_images step: duration", f"{first.step_seconds or 0:.2f} s ({first.phases_line()})")
        table.add("moon_images step: rate", f"{step_rate:.1f} images/s, "
                  f"{_rate(first.bytes_stored / MB, first.step_seconds):.1f} MB/s "
                  f"(ideal {args.concurrency}/{args.delay:g} s = {ideal:.0f} images/s)")
        step_ratio = step_rate / base_rate if base_rate else 0
        table.add("moon_images step: rate over baseline rate", f"{step_ratio:.1f}x", ">= 8x", step_ratio >= 8)

        # 4. the same pages again
        print("bench: the same pages again ...", flush=True)
        again = run_project(env, pages, workdir, control, "again", servers)
        if again.returncode != 0:
            failures.append(f"second project run exited {again.returncode}: {_tail(again.log)}")
        downloads = again.counts.get("image", 0)
        share = (again.step_seconds or 0) / first.step_seconds if first.step_seconds else 1.0
        table.add("re-run: wall time (start-up included)", f"{again.seconds:.1f} s")
        table.add("re-run: requests to the double", f"{again.counts.get('search', 0)} search, "
                  f"{again.counts.get('collection', 0)} collection.json")
        table.add("re-run: image downloads", f"{downloads} ({again.already_stored} already stored)", "0",
                  downloads == 0)
        table.add("re-run: moon_images step", f"{again.step_seconds or 0:.2f} s = {share:.1%} of the first",
                  "<= 5%", share <= 0.05)
        table.add("re-run: moon_images step parts", again.phases_line())

        # 5. big images: the same servers, the double reconfigured
        if not args.skip_big:
            control.configure(total_hits=args.big_images, image_bytes=args.big_image_bytes)
            bucket = f"bench-big-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)
            env = project_env(double, moto.url, bucket, "dataset", new_dagster_home(workdir, "home-big"),
                              args.concurrency)
            print(f"bench: {args.big_images} images of {args.big_image_bytes / MB:.0f} MB ...", flush=True)
            big = run_project(env, "1", workdir, control, "big", servers)
            if big.returncode != 0:
                failures.append(f"big-image run exited {big.returncode}: {_tail(big.log)}")
            rss_mb = big.peak_rss_kb / 1024
            table.add(f"big images: {args.big_image_bytes / MB:.0f} MB each, concurrency {args.concurrency}",
                      f"{big.stored} stored ({big.failed} failed), {big.bytes_stored / MB:.0f} MB in "
                      f"{big.step_seconds or 0:.1f} s step")
            table.add("big images: peak RSS of the run", f"{rss_mb:.0f} MB", "<= 400 MB", rss_mb <= 400)
            table.add("big images: CPU used", big.cpu_line())
    return failures


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
