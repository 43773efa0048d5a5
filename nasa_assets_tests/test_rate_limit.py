"""NASA_API_RATE_LIMIT_PER_HOUR in every window: the sliding window on a fake clock, one limiter
per process shared by every client and thread and passed by every attempt, and across runs the
`nasa_api` pool of the instance."""

import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from nasa_assets.defs.assets.moon_images import moon_images
from nasa_assets.defs.assets.sampled_manifest import sampled_manifest
from nasa_assets.defs.assets.search_results import search_results
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.ratelimit import RateLimiter, clear_shared_limiters, shared_limiter
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets_tests.helpers import double_env


ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0


class FakeTime:
    """A clock that only moves when somebody sleeps; any number of threads may sleep at once."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the limiter never sleeps for nothing"
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        time.sleep(0)  # let the other threads in


class GrantLog(collections.deque):
    """The limiter's stamp queue, remembering every slot it ever handed out."""

    def __init__(self):
        super().__init__()
        self.granted: list[float] = []

    def append(self, stamp):
        self.granted.append(stamp)
        super().append(stamp)


def fake_limiter(limit: int, window: float = HOUR) -> tuple[RateLimiter, GrantLog, FakeTime]:
    fake = FakeTime()
    limiter = RateLimiter(limit, window, clock=fake.clock, sleep=fake.sleep)
    limiter._stamps = log = GrantLog()
    return limiter, log, fake


def assert_within_budget(granted: list[float], limit: int, window: float) -> None:
    """No half-open window [t, t + window) holds more than `limit` grants."""
    stamps = sorted(granted)
    for first, later in zip(stamps, stamps[limit:]):
        assert later - first >= window, f"{limit + 1} requests within {later - first:.0f} s"


@pytest.mark.parametrize("limit, threads, each", [(1, 4, 3), (7, 8, 10), (50, 16, 20)])
def test_threads_sharing_a_limiter_stay_within_every_window(limit, threads, each):
    limiter, log, fake = fake_limiter(limit)

    def worker():
        for _ in range(each):
            limiter.acquire()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool)
    assert len(log.granted) == threads * each
    assert_within_budget(log.granted, limit, HOUR)
    # and it does not wait needlessly: the first `limit` requests go at once
    assert sorted(log.granted)[:limit] == [1000.0] * limit


def test_budget_frees_up_as_the_window_slides():
    limiter, log, fake = fake_limiter(3, window=10)
    for _ in range(3):
        limiter.acquire()
    assert limiter.wait_time() == 10
    fake.sleep(4)
    assert limiter.wait_time() == 6
    fake.sleep(6)
    assert limiter.wait_time() == 0
    limiter.acquire()
    assert log.granted == [1000.0, 1000.0, 1000.0, 1010.0]


def test_every_client_in_a_process_shares_one_limiter(nasa_double):
    clients = [resources_from_env(double_env(nasa_double, NASA_API_RATE_LIMIT_PER_HOUR="77"))["nasa"].client()
               for _ in range(3)]
    slash = double_env(nasa_double, NASA_API_RATE_LIMIT_PER_HOUR="77",
                       NASA_API_BASE_URL=nasa_double.base_url + "/")
    clients.append(resources_from_env(slash)["nasa"].client())
    assert len({id(c.rate_limiter) for c in clients}) == 1
    assert clients[0].rate_limiter.limit == 77
    other_api = double_env(nasa_double, NASA_API_RATE_LIMIT_PER_HOUR="77",
                           NASA_API_BASE_URL="http://127.0.0.1:9")
    assert resources_from_env(other_api)["nasa"].client().rate_limiter is not clients[0].rate_limiter


def test_every_attempt_and_redirect_hop_of_every_client_is_budgeted(nasa_double):
    limiter, log, fake = fake_limiter(5)
    clients = [
        NasaClient(base_url=nasa_double.base_url, allowed_hosts=parse_allowed_hosts(nasa_double.host),
                   rate_limiter=limiter, sleep=lambda s: None)
        for _ in range(2)
    ]
    same_search = f"{nasa_double.base_url}/search?q=moon&media_type=image&page=1&page_size=100"
    nasa_double.faults = {"search": ["500", "reset", f"redirect:{same_search}"]}
    assert len(clients[0].search_page("moon", 1).items) == 100  # 4 requests
    pages = []

    def worker(client):
        for page in (1, 2, 3):
            pages.append(len(client.search_page("moon", page).items))

    threads = [threading.Thread(target=worker, args=(clients[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(pages) == [50] * 4 + [100] * 8
    # 13 searches + 2 retries + 1 redirect hop: every request the double saw took a slot
    assert nasa_double.counts["search"] == len(log.granted) == 16
    assert_within_budget(log.granted, 5, HOUR)
    assert max(log.granted) - min(log.granted) >= 3 * HOUR  # 16 requests at 5/hour: 4 windows


def test_only_the_search_step_is_in_the_nasa_api_pool():
    assert search_results.op.pool == "nasa_api"
    # the others call the file host, not the rate-limited API
    assert sampled_manifest.op.pool is None and moon_images.op.pool is None


def _step_windows(instance, run_id: str, step: str) -> tuple[float, float, list[str]] | None:
    start = end = None
    messages = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key != step:
            continue
        messages.append(entry.message or "")
        if event.event_type_value == "STEP_START":
            start = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            end = entry.timestamp
    if not messages:
        return None  # a run without that step (python -m nasa_assets run also builds moon_dataset)
    assert start is not None and end is not None, messages
    return start, end, messages


def _wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _searched(double, page: str) -> bool:
    return any(kind == "search" and f"&page={page}&" in path for kind, path in list(double.requests))


def _blocked_runs(instance) -> int:
    """Runs whose search step logged that it waits for a nasa_api slot."""
    return sum(
        any("blocked by limit for pool nasa_api" in (e.message or "") for e in instance.all_logs(run.run_id))
        for run in instance.get_runs()
    )


def _two_concurrent_runs(nasa_double, tmp_path, slots: int):
    """Pages 1 and 2 as two `python -m nasa_assets run` processes on one instance."""
    home = tmp_path / f"home{slots}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NASA_", "S3_", "DAGSTER_"))}
    # The held request must not time out and be retried: that would free the first run's slot.
    # Only the search steps are compared: a few images per page and no dataset build keep the
    # two processes short.
    env.update(double_env(nasa_double), DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT),
               NASA_ASSETS_LOCAL_DIR=str(tmp_path / f"data{slots}"), NASA_READ_TIMEOUT="150",
               SEARCH_RESULT_SAMPLING_FACTOR="20")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        instance = dg.DagsterInstance.get()
        # What `dagster instance concurrency set nasa_api N` (make pools) does.
        instance.event_log_storage.set_concurrency_slots("nasa_api", slots)
        # The first run's search request is held open by the double until the second run has
        # visibly reached its own search step: blocked on the pool (limit 1), or its request
        # arrived (limit 2). No fixed sleep, so a slow start-up of the second process cannot
        # turn the test into a race. (Started at the same instant, two claims could both succeed
        # on a SQLite instance, whose slot claim relies on SELECT ... FOR UPDATE, which SQLite
        # ignores; Postgres instances lock the row.)
        nasa_double.hold_next("search")
        procs = []
        try:
            for page in ("1", "2"):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "nasa_assets", "run", "--pages", page, "--no-dataset"],
                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                _wait_for(lambda: _searched(nasa_double, "1"), "the first run's search request")
            if slots == 1:
                _wait_for(lambda: _blocked_runs(instance) >= 1, "the second run to wait for the pool")
            else:
                _wait_for(lambda: _searched(nasa_double, "2"), "the second run's search request")
        finally:
            nasa_double.release()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
        windows = [w for run in instance.get_runs()
                   if (w := _step_windows(instance, run.run_id, "search_results"))]
        assert len(windows) == 2
        instance.dispose()
    return windows


def test_pool_limit_of_one_serialises_search_steps_across_runs(nasa_double, tmp_path):
    (a_start, a_end, a_log), (b_start, b_end, b_log) = sorted(
        _two_concurrent_runs(nasa_double, tmp_path, slots=1))
    assert a_end <= b_start, "the two search steps overlapped despite a pool limit of 1"
    assert any("blocked by limit for pool nasa_api" in m for m in b_log)


def test_without_the_limit_the_same_runs_do_overlap(nasa_double, tmp_path):
    """The control for the test above: it would notice an overlap."""
    (a_start, a_end, _), (b_start, b_end, _) = sorted(_two_concurrent_runs(nasa_double, tmp_path, slots=2))
    assert b_start < a_end


# --- one limiter on a fake clock -------------------------------------------------------------------


def sliding_limiter(limit, window=10.0):
    fake = FakeTime(now=0.0)
    return RateLimiter(limit, window, clock=fake.clock, sleep=fake.sleep), fake


@pytest.mark.parametrize("limit", [0, -3])
def test_limit_below_one_raises(limit):
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(limit)


def test_requests_within_budget_do_not_wait():
    budget, fake = sliding_limiter(3)
    for _ in range(3):
        assert budget.wait_time() == 0.0
        budget.acquire()
    assert fake.sleeps == []
    assert budget.wait_time() == 10.0


def test_request_over_budget_waits_for_the_oldest_to_expire():
    budget, fake = sliding_limiter(2)
    budget.acquire()
    fake.now = 4.0
    budget.acquire()
    fake.now = 5.0
    assert budget.wait_time() == 5.0
    budget.acquire()
    assert fake.sleeps == [5.0]
    assert fake.now == 10.0
    # the window slides: now the request at t=4 is the oldest
    assert budget.wait_time() == 4.0


def test_long_waits_sleep_in_slices():
    budget, fake = sliding_limiter(1, window=3600.0)
    budget.acquire()
    budget.acquire()
    assert fake.sleeps == [60.0] * 60
    assert fake.now == 3600.0


def test_shared_limiter_is_one_per_root_and_limit():
    a = shared_limiter("https://images-api.test.invalid", 7)
    assert shared_limiter("https://images-api.test.invalid", 7) is a
    assert shared_limiter("https://images-api.test.invalid", 8) is not a
    assert shared_limiter("https://other.test.invalid", 7) is not a
    assert a.limit == 7 and a.window == 3600.0
    clear_shared_limiters()  # a fresh budget: another limiter for the same root and limit
    assert shared_limiter("https://images-api.test.invalid", 7) is not a
