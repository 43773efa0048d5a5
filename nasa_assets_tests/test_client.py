"""NasaClient against a flaky NASA double: every fault mode retried with backoff and jitter within
bounds, only complete bodies stored, and clean errors when the retries run out. The tests use a
recording sleep (no real waiting); whole pages under faults are in test_pipeline.py."""

import hashlib
import io
import json
import socket
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from nasa_assets.dataset.fetch import download_to_store
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.dataset.manifest import listed_renditions
from nasa_assets.nasa.client import (
    BREAKER_THRESHOLD,
    FetchError,
    NasaApiError,
    NasaClient,
    describe_transient,
)
from nasa_assets.nasa import transport
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage import LocalStore
from nasa_assets_tests.helpers import local_env, materialize_pages, no_incoming, read_table, serving

MB = 1 << 20
BACKOFF = 0.5  # NasaClient's default
READ_TIMEOUT = 2.0
TRANSIENT = ["429", "500", "502", "503", "reset", "truncate", "slow:5"]


def make_client(double, sleeps: list, **options) -> NasaClient:
    # Exact request counts: a normal answer must never time out, even on a busy 2-core machine
    # (seconds of scheduling stalls), while "slow:5" always does.
    options.setdefault("read_timeout", READ_TIMEOUT)
    return NasaClient(
        base_url=double.base_url, allowed_hosts=parse_allowed_hosts(double.host),
        rate_limiter=RateLimiter(10_000), sleep=sleeps.append, **options,
    )


def assert_backoff(sleeps: list, fault: str) -> None:
    if fault == "429":
        assert sleeps == [1.0] * len(sleeps)  # the double's Retry-After: 1, honoured
    else:
        for attempt, delay in enumerate(sleeps):  # full jitter under an exponential ceiling
            assert 0 <= delay <= BACKOFF * 2**attempt


# --- the client: each fault is retried, with backoff, and the retries are bounded --------------


@pytest.mark.parametrize("fault", TRANSIENT)
def test_search_fault_is_retried_until_it_succeeds(nasa_double, fault):
    sleeps = []
    client = make_client(nasa_double, sleeps)
    nasa_double.faults = {"search": [fault, fault]}
    page = client.search_page("moon", 1)
    assert len(page.items) == 100
    assert nasa_double.counts["search"] == 3
    assert len(sleeps) == 2
    assert_backoff(sleeps, fault)


@pytest.mark.parametrize("fault", TRANSIENT)
def test_collection_fault_is_retried_until_it_succeeds(nasa_double, fault):
    sleeps = []
    client = make_client(nasa_double, sleeps)
    href = nasa_double.corpus()[30]["href"]
    nasa_double.faults = {"collection": [fault]}
    urls = client.collection(href)
    assert any(u.endswith("~large.jpg") for u in urls)
    assert nasa_double.counts["collection"] == 2
    assert len(sleeps) == 1
    assert_backoff(sleeps, fault)


class RecordingStore(LocalStore):
    """A LocalStore that remembers every object handed to it."""

    def __init__(self, root):
        super().__init__(root)
        self.puts: list[tuple[str, bytes]] = []

    def put_file(self, key, fileobj, **kw):
        data = fileobj.read()
        self.puts.append((key, data))
        super().put_file(key, io.BytesIO(data), **kw)


@pytest.mark.parametrize("fault", TRANSIENT)
def test_image_fault_is_retried_and_only_the_complete_body_is_stored(nasa_double, tmp_path, fault):
    sleeps = []
    client = make_client(nasa_double, sleeps)
    store = RecordingStore(tmp_path)
    nasa_id = nasa_double.corpus()[5]["data"][0]["nasa_id"]
    url = f"{nasa_double.base_url}/image/{nasa_id}/{nasa_id}~large.jpg"
    served = nasa_double.image_bytes_for(nasa_id, "large")
    nasa_double.faults = {"image": [fault]}

    facts = download_to_store(client, store, url, "images/x.jpg", max_bytes=10 * MB)

    assert nasa_double.counts["image"] == 2
    assert len(sleeps) == 1
    assert_backoff(sleeps, fault)
    # One object, and it is the whole body: the truncated attempt never reached the store.
    assert store.puts == [("images/x.jpg", served)]
    assert (tmp_path / "images/x.jpg").read_bytes() == served
    assert facts.sha256 == hashlib.sha256(served).hexdigest() and facts.bytes == len(served)
    assert no_incoming(tmp_path)


def test_a_body_that_stalls_past_the_read_timeout_is_fetched_again(nasa_double, tmp_path):
    """The double's slow fault delays the headers; here the body stops half way instead."""
    body = nasa_double.image_bytes_for(nasa_double.corpus()[5]["data"][0]["nasa_id"], "large")
    calls = []

    class Stalling(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            calls.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if len(calls) == 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(READ_TIMEOUT + 3)  # well past the client's read timeout
                return
            self.wfile.write(body)

    with serving(Stalling) as host:
        sleeps = []
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10), sleep=sleeps.append, read_timeout=READ_TIMEOUT)
        store = RecordingStore(tmp_path)
        download_to_store(client, store, f"http://{host}/x~large.jpg", "images/x.jpg", 10 * MB)
    assert len(calls) == 2 and len(sleeps) == 1
    assert store.puts == [("images/x.jpg", body)]


def test_an_image_answered_404_fails_at_once_without_retries(nasa_double, tmp_path):
    sleeps = []
    client = make_client(nasa_double, sleeps, max_retries=4)
    url = f"{nasa_double.base_url}/image/NO-SUCH-ID/NO-SUCH-ID~large.jpg"
    with pytest.raises(FetchError, match="^HTTP 404 from the file host$"):
        download_to_store(client, LocalStore(tmp_path), url, "images/x.jpg", 10 * MB)
    assert nasa_double.counts["image"] == 1 and sleeps == []
    assert not (tmp_path / "images").exists()


def test_a_collection_json_that_keeps_failing_rejects_its_item_with_the_reason(tmp_path, nasa_double):
    """A failing collection.json is an outage of the file host: the step's breaker stops the
    look-ups after a few failures and the rest are rejected as "file host unavailable"."""
    nasa_double.faults = {"collection": ["500"] * 1000}
    env = local_env(nasa_double, tmp_path, NASA_MAX_RETRIES="1", MAX_REJECTED_FRACTION="1",
                    NASA_FILE_HOST_PAUSE_SECONDS="0.1")
    result = materialize_pages(env, "0001")
    assert result.success
    rejected = read_table((tmp_path / "rejected/0001.parquet").read_bytes())
    kept = read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes())
    # Items in link format 1.0 need their collection.json; 1.1 items list their renditions.
    needs_lookup = {i["data"][0]["nasa_id"] for i in nasa_double.corpus()[:100]
                    if listed_renditions({"raw": json.dumps(i)}) is None}
    assert 0 < len(needs_lookup) < 100
    assert set(rejected["nasa_id"]) == needs_lookup and len(kept) == 100 - len(needs_lookup)
    reasons = rejected["reason"].value_counts()
    assert set(reasons.index) <= {"collection.json: HTTP 500 from the file host",
                                  "collection.json: file host unavailable"}
    assert reasons["collection.json: file host unavailable"] > len(needs_lookup) // 2
    # Far fewer than 1 + NASA_MAX_RETRIES each: the requests in flight when it opened, and a probe.
    assert nasa_double.counts["collection"] <= 16 + BREAKER_THRESHOLD + 1 < 2 * len(needs_lookup)
    metadata = result.asset_materializations_for_node("sampled_manifest")[0].metadata
    assert metadata["file_host_requests"].value == nasa_double.counts["collection"]
    assert metadata["file_host_failures"].value == nasa_double.counts["collection"]
    assert metadata["breaker_opened"].value is True


def test_search_retries_are_bounded_and_the_error_is_clean(nasa_double):
    sleeps = []
    client = make_client(nasa_double, sleeps, max_retries=3, api_key="k3y-NOT-FOR-LOGS")
    nasa_double.faults = {"search": ["500"] * 10}
    with pytest.raises(NasaApiError) as raised:
        client.search_page("moon", 2)
    assert nasa_double.counts["search"] == 4  # 1 + max_retries, then it gives up
    assert len(sleeps) == 3
    assert_backoff(sleeps, "500")
    assert str(raised.value) == "search page 2: HTTP 500 Injected HTTP 500"
    assert raised.value.__cause__ is None


def test_search_gives_up_on_a_dead_connection_without_leaking_the_url(nasa_double):
    sleeps = []
    client = make_client(nasa_double, sleeps, max_retries=2, api_key="k3y-NOT-FOR-LOGS")
    nasa_double.faults = {"search": ["reset"] * 10}
    with pytest.raises(NasaApiError) as raised:
        client.search_page("moon", 1)
    assert nasa_double.counts["search"] == 3
    message = str(raised.value)
    assert "failed after 3 attempts" in message and "k3y" not in message and "api_key" not in message


def test_a_refused_connection_is_described_by_its_os_error_without_the_url():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/search"
    with pytest.raises(requests.ConnectionError) as raised:
        requests.get(url, params={"api_key": "k3y-NOT-FOR-LOGS"}, timeout=5)
    assert "k3y" in str(raised.value)  # requests' own message carries the query string
    assert describe_transient(raised.value) == "ConnectionError ([Errno 111] Connection refused)"
    reset = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    assert describe_transient(reset) == "ConnectionError ([Errno 104] Connection reset by peer)"
    assert describe_transient(requests.ReadTimeout("GET /search?api_key=x")) == "ReadTimeout"


@pytest.mark.parametrize("fault, reason", [
    ("503", "HTTP 503 from the file host"),
    ("reset", "failed after 3 attempts: ConnectionError"),
])
def test_image_retries_do_not_multiply(nasa_double, tmp_path, fault, reason):
    """Errors before the body are retried by the client alone: 1 + max_retries requests."""
    sleeps = []
    client = make_client(nasa_double, sleeps, max_retries=2)
    nasa_id = nasa_double.corpus()[5]["data"][0]["nasa_id"]
    nasa_double.faults = {"by_id": {nasa_id: fault}}
    url = f"{nasa_double.base_url}/image/{nasa_id}/{nasa_id}~large.jpg"
    with pytest.raises(FetchError, match=reason):
        download_to_store(client, LocalStore(tmp_path), url, "images/x.jpg", max_bytes=10 * MB)
    assert nasa_double.counts["image"] == 3
    assert len(sleeps) == 2
    assert not (tmp_path / "images").exists()


def test_truncated_every_time_gives_up_after_three_transfers_and_stores_nothing(nasa_double, tmp_path):
    sleeps = []
    client = make_client(nasa_double, sleeps)
    nasa_id = nasa_double.corpus()[5]["data"][0]["nasa_id"]
    nasa_double.faults = {"by_id": {nasa_id: "truncate"}}
    url = f"{nasa_double.base_url}/image/{nasa_id}/{nasa_id}~large.jpg"
    with pytest.raises(FetchError) as raised:
        download_to_store(client, LocalStore(tmp_path), url, "images/x.jpg", max_bytes=10 * MB)
    assert raised.value.reason == "transfer interrupted (ChunkedEncodingError); gave up after 3 attempts"
    assert nasa_double.counts["image"] == 3
    assert len(sleeps) == 2 and all(0 <= s <= BACKOFF * 2**i for i, s in enumerate(sleeps))
    assert not (tmp_path / "images").exists()
    assert no_incoming(tmp_path)


def test_backoff_has_jitter_and_a_ceiling(nasa_double):
    client = make_client(nasa_double, [], max_backoff=4.0)
    delays = [client._delay(attempt) for attempt in (6,) * 50]
    assert len(set(delays)) > 40  # full jitter: concurrent failures do not retry in step
    assert all(0 <= d <= 4.0 for d in delays)

    def response(retry_after: str) -> requests.Response:
        r = requests.Response()
        r.status_code, r.headers["Retry-After"] = 429, retry_after
        return r

    assert client._delay(0, response("2")) == 2.0
    assert client._delay(0, response("3600")) == 4.0  # a hostile Retry-After is capped
    assert 0 <= client._delay(0, response("Wed, 21 Oct 2015 07:28:00 GMT")) <= 4.0  # in the past
    assert 0 <= client._delay(0, response("soon")) <= BACKOFF  # unparsable: plain backoff


def test_the_retry_backoff_defaults_to_half_a_second_doubling_and_is_configurable(monkeypatch):
    """Each wait's ceiling, the jitter taken out: NASA_RETRY_BACKOFF_SECONDS * 2**n, at most 30 s.
    The other tests set it small where they are not about the wait."""
    monkeypatch.setattr(transport.random, "uniform", lambda low, high: high)
    default = resources_from_env({})["nasa"]
    assert [default.client()._delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert default.probe_client()._delay(0) == BACKOFF  # a sensor tick's client too
    small = resources_from_env({"NASA_RETRY_BACKOFF_SECONDS": "0.02"})["nasa"]
    assert [small.client()._delay(n) for n in range(3)] == [0.02, 0.04, 0.08]
    assert resources_from_env({"NASA_RETRY_BACKOFF_SECONDS": "0"})["nasa"].client()._delay(5) == 0
    with pytest.raises(ValueError, match="^NASA_RETRY_BACKOFF_SECONDS must be from 0 to 30"):
        resources_from_env({"NASA_RETRY_BACKOFF_SECONDS": "31"})
