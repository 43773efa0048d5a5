"""Processes for the benchmark: the servers it starts, and the memory of a measured process tree.

Memory is the resident set of the WHOLE tree, sampled from /proc: a command's own children (a
run worker, a code server, img2dataset's worker processes) count, not just the process that was
started. Summed RSS counts pages shared between processes (forked children) once per process,
as `ps` and most monitors do; the proportional share (PSS) is reported beside it.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    sid: int
    name: str


def parse_stat(text: str) -> ProcInfo:
    """One /proc/<pid>/stat line; the name is in parentheses and may itself contain them."""
    head, _, rest = text.rpartition(")")
    pid, _, name = head.partition(" (")
    fields = rest.split()
    return ProcInfo(int(pid), int(fields[1]), int(fields[3]), name)


def list_processes(proc: Path = Path("/proc")) -> list[ProcInfo]:
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            out.append(parse_stat((entry / "stat").read_text()))
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return out


def tree(processes: Iterable[ProcInfo], roots: Iterable[int], sessions: Iterable[int] = ()) -> set[int]:
    """The roots, their descendants, and every process of the given sessions (a child that was
    re-parented to init after its parent exited still belongs to the session it was started in)."""
    processes = list(processes)
    sessions = set(sessions)
    children: dict[int, list[int]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info.pid)
    members = {info.pid for info in processes if info.sid in sessions}
    todo = [pid for pid in roots if any(info.pid == pid for info in processes)] + list(members)
    while todo:
        pid = todo.pop()
        members.add(pid)
        todo.extend(child for child in children.get(pid, []) if child not in members)
    return members


def memory_kb(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) when it is gone or unreadable."""
    rss = pss = 0
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        return rss, pss
    except (OSError, ValueError, IndexError):
        pass
    try:  # kernels without smaps_rollup: RSS only, PSS taken as RSS
        rss = int((proc / str(pid) / "statm").read_text().split()[1]) * PAGE_KB
        return rss, rss
    except (OSError, ValueError, IndexError):
        return 0, 0


@dataclass
class Snapshot:
    at: float  # seconds since the sampler started
    rss_kb: int
    pss_kb: int
    processes: int


class TreeSampler:
    """Samples the summed RSS/PSS of a process tree in a background thread until stopped."""

    def __init__(self, roots: Iterable[int] = (), sessions: Iterable[int] = (), interval: float = 0.2,
                 proc: Path = Path("/proc")):
        self.roots, self.sessions = set(roots), set(sessions)
        self.interval, self.proc = interval, proc
        self.peak = Snapshot(0.0, 0, 0, 0)
        self.peak_pss_kb = 0
        self.last = Snapshot(0.0, 0, 0, 0)
        self.marks: dict[str, Snapshot] = {}
        # The step that logged last (see step_of) -> the highest RSS (KiB) sampled while it was.
        self.phase = "start-up"
        self.phase_peaks: dict[str, int] = {}
        self.per_process: dict[int, tuple[str, int]] = {}  # pid -> (command line, peak RSS KiB)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def watch(self, pid: int) -> None:
        """Count `pid`, its descendants and its session, for a process started with
        start_new_session=True: its session id is its pid. (Asking os.getsid right after the start
        can race the child's setsid and return the caller's own session: every process of the
        caller, the servers included, was then counted.)"""
        with self._lock:
            self.roots.add(pid)
            self.sessions.add(pid)

    def sample(self) -> Snapshot:
        with self._lock:
            roots, sessions = set(self.roots), set(self.sessions)
        pids = tree(list_processes(self.proc), roots, sessions)
        rss = pss = 0
        each = {}
        for pid in pids:
            r, p = memory_kb(pid, self.proc)
            rss, pss = rss + r, pss + p
            each[pid] = r
        snap = Snapshot(time.monotonic() - self._started, rss, pss, len(pids))
        with self._lock:
            for pid, r in each.items():
                command, peak = self.per_process.get(pid) or (_cmdline(pid, self.proc), 0)
                self.per_process[pid] = (command, max(peak, r))
            self.last = snap
            self.phase_peaks[self.phase] = max(self.phase_peaks.get(self.phase, 0), rss)
            if snap.rss_kb > self.peak.rss_kb:
                self.peak = snap
            self.peak_pss_kb = max(self.peak_pss_kb, snap.pss_kb)
        return snap

    def peak_of(self, needle: str) -> int:
        """The highest RSS (KiB) of one process whose command line contains `needle`."""
        with self._lock:
            return max((peak for command, peak in self.per_process.values() if needle in command), default=0)

    def enter(self, phase: str) -> None:
        """Samples from now on count for `phase` (until the next one)."""
        if phase != self.phase:
            self.sample()  # the memory at the end of the previous phase is the previous phase's
            with self._lock:
                self.phase = phase

    def mark(self, label: str) -> Snapshot:
        """Sample now and keep the figure under `label` (e.g. "after page 10")."""
        snap = self.sample()
        self.marks[label] = snap
        return snap

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _cmdline(pid: int, proc: Path) -> str:
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# A measured command
# --------------------------------------------------------------------------------------------


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_kb: int
    peak_pss_kb: int
    cpu_seconds: float
    log: Path
    marks: dict[str, Snapshot] = field(default_factory=dict)
    lines: int = 0
    phase_peaks: dict[str, int] = field(default_factory=dict)  # step -> peak RSS KiB (see step_of)

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb / 1024

    def tail(self, lines: int = 15) -> str:
        return tail(self.log, lines)


# A Dagster console line of a step: "... - <run id> - [<pid> - ]<step key> - ...". Run-level lines
# name an event type (upper case) there instead.
_STEP = re.compile(r" - [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} - (?:\d+ - )?([a-z_][a-z0-9_]*) - ")


def step_of(line: str) -> str | None:
    """The step key a Dagster log line comes from, if it comes from a step."""
    found = _STEP.search(line)
    return found.group(1) if found else None


def run_measured(argv: list[str], env: dict, cwd: Path, log: Path, timeout: float,
                 on_line: Callable[[str, TreeSampler], None] | None = None) -> Measured:
    """Run `argv` in its own session, its output (stdout and stderr) into `log`; wall time from
    start to exit, peak RSS of its tree, CPU of it and the children it waited for."""
    with open(log, "w") as out, TreeSampler() as sampler:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)
        sampler.watch(proc.pid)
        lines = 0
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                if ready:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    lines += 1
                    out.write(line)
                    if (step := step_of(line)) is not None:
                        sampler.enter(step)
                    if on_line is not None:
                        on_line(line, sampler)
                if time.monotonic() > deadline:
                    out.write(f"\n[bench] timed out after {timeout:.0f} s; killed\n")
                    _kill_session(proc.pid)
                    break
            _, status, usage = os.wait4(proc.pid, 0)  # wait4: the CPU time of it and its children
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            seconds = time.perf_counter() - started
            proc.stdout.close()
            _kill_session(proc.pid)  # whatever it left behind
            if proc.returncode is None:  # interrupted before wait4
                proc.wait(timeout=30)
        sampler.sample()
    return Measured(proc.returncode, seconds, sampler.peak.rss_kb, sampler.peak_pss_kb,
                    usage.ru_utime + usage.ru_stime, log, dict(sampler.marks), lines, dict(sampler.phase_peaks))


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Servers (subprocesses of the bench, outside every measured tree)
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A subprocess serving HTTP on 127.0.0.1, stopped (and reaped) on exit."""

    def __init__(self, name: str, log: Path):
        self.name, self.log = name, log
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output = open(log, "wb")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, signum: int = signal.SIGTERM, wait: float = 10) -> None:
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signum)
                try:
                    proc.wait(timeout=wait)
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
    server = Server("NASA double", log)
    server.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=server.output, text=True)
    deadline = time.monotonic() + 120
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
    port = free_port()
    server = Server("moto S3", log)
    server.proc = subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   cwd=ROOT, stdout=server.output, stderr=subprocess.STDOUT)
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
