"""Issue 10, parts 3 to 5: bounded time per request, a breaker for file-host outages, and the
small holes (Retry-After, deep JSON, https, IPv6 hosts), against the NASA double and throwaway
local servers."""

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nasa_assets.dataset.downloader import image_row
from nasa_assets.dataset.fetch import download_to_store
from nasa_assets.nasa.breaker import Breaker
from nasa_assets.nasa.client import (
    BREAKER_THRESHOLD,
    MAX_ANSWER_BYTES,
    FetchError,
    NasaApiError,
    NasaClient,
    retry_after,
)
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import parse_allowed_hosts, upgraded, url_block_reason
from nasa_assets.storage import LocalStore
from nasa_assets_tests.helpers import answering, local_env, materialize_pages, read_table, serving

MB = 1 << 20
DEEP = b"[" * 100_000 + b"]" * 100_000  # valid JSON that json.loads cannot decode: RecursionError


def make_client(host: str, sleeps: list | None = None, **options) -> NasaClient:
    options.setdefault("read_timeout", 5.0)
    return NasaClient(base_url=f"http://{host}", allowed_hosts=parse_allowed_hosts(host),
                      rate_limiter=RateLimiter(10_000),
                      sleep=sleeps.append if sleeps is not None else time.sleep, **options)


class Script:
    """A handler answering GETs from a list of (status, headers, body), the last one repeated;
    every request path is recorded."""

    def __init__(self, *answers):
        self.answers, self.paths = list(answers), []

    def handler(self):
        script = self

        class Scripted(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                script.paths.append(self.path)
                status, headers, body = script.answers[min(len(script.paths), len(script.answers)) - 1]
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Scripted


def trickling(body: bytes, per_byte: float = 0.2, content_type: str = "application/json",
              paths: list | None = None):
    """A handler sending ``body`` with an honest Content-Length, one byte every ``per_byte`` s;
    each request's path goes to ``paths``."""

    class Trickle(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if paths is not None:
                paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    time.sleep(per_byte)
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
            except OSError:  # the client gave up: that is the point
                pass

    return Trickle


def bounded(call, seconds: float):
    """call() in a thread, waited for at most `seconds`: its result or its exception (and a failure
    if it is still running)."""
    outcome = []

    def run():
        try:
            outcome.append((call(), None))
        except BaseException as error:  # handed to the test's thread
            outcome.append((None, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    result, error = outcome[0]
    if error is not None:
        raise error
    return result


# --- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), (" 7 ", 7.0), (None, None), ("", None),
    ("²", None), ("٣", None),  # str.isdigit() accepts these, float() would not
    ("-5", None), ("1.5", None), ("soon", None), ("Mon, 99 Foo 2020 99:99:99 GMT", None),
    ("9" * 400, float("inf")),  # absurdly long: longer than any cap
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
])
def test_retry_after_never_raises(value, expected):
    assert retry_after(value) == expected


def test_a_date_far_away_is_a_very_long_wait():
    assert retry_after("Fri, 31 Dec 9999 23:59:59 GMT") > 1e9


@pytest.mark.parametrize("value", ["²", "-5", "Mon, 99 Foo 2020 99:99:99 GMT", "\u00a0"])
def test_an_unreadable_retry_after_is_plain_backoff(value):
    script = Script((503, {"Retry-After": value}, b"{}"), (200, {}, b'["http://x/a~large.jpg"]'))
    with serving(script.handler()) as host:
        sleeps = []
        assert make_client(host, sleeps).collection(f"http://{host}/c.json") == ["http://x/a~large.jpg"]
    assert len(script.paths) == 2 and len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


@pytest.mark.parametrize("value", ["3600", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_search_asked_to_wait_longer_than_the_cap_ends_at_once(value):
    script = Script((429, {"Retry-After": value}, b'{"reason": "slow down"}'))
    with serving(script.handler()) as host:
        sleeps = []
        with pytest.raises(NasaApiError, match=r"^search page 1: HTTP 429 asking to retry after \S+ s, "
                                               r"longer than the 30 s this client waits$"):
            make_client(host, sleeps).search_page("moon", 1)
    assert len(script.paths) == 1 and sleeps == []  # no four doomed retries


def test_the_file_host_asking_for_a_long_wait_stops_the_steps_downloads(tmp_path):
    script = Script((503, {"Retry-After": "3600"}, b"{}"))
    with serving(script.handler()) as host:
        client = make_client(host, [])
        breaker = Breaker(pause=0)
        store = LocalStore(tmp_path)
        with pytest.raises(FetchError, match="^file host unavailable$"):
            download_to_store(client, store, f"http://{host}/a~large.jpg", "images/a.jpg", MB, breaker=breaker)
        # The first answer opened the breaker, the probe got the same answer: nothing more is sent.
        assert len(script.paths) == 2 and breaker.down
        for name in "bcd":
            with pytest.raises(FetchError, match="^file host unavailable$"):
                download_to_store(client, store, f"http://{host}/{name}~large.jpg", "images/x.jpg", MB,
                                  breaker=breaker)
        assert len(script.paths) == 2
    assert breaker.metadata() == {"file_host_requests": 2, "file_host_failures": 2,
                                  "breaker_opened": True, "file_host_unavailable": True}


# --- deep JSON and oversized answers ------------------------------------------------------------


def test_deeply_nested_json_is_a_bad_answer_not_a_crash():
    with serving(answering(DEEP, "application/json")) as host:
        client = make_client(host, [])
        with pytest.raises(NasaApiError, match="^search page 3: JSON nested too deeply to decode$"):
            client.search_page("moon", 3)
        with pytest.raises(FetchError, match="^JSON nested too deeply to decode$"):
            client.collection(f"http://{host}/c.json")


def test_a_deeply_nested_search_page_fails_its_step_with_a_clear_message(tmp_path):
    with serving(answering(DEEP, "application/json")) as host:
        env = {"NASA_API_BASE_URL": f"http://{host}", "NASA_ALLOWED_HOSTS": host,
               "NASA_ASSETS_LOCAL_DIR": str(tmp_path)}
        result = materialize_pages(env, "0001")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "search_results"
    assert failure.event_specific_data.error.cause.message.startswith(
        "nasa_assets.nasa.errors.NasaApiError: search page 1: JSON nested too deeply to decode")


def test_a_deeply_nested_collection_json_rejects_its_item_only(tmp_path, nasa_double):
    with serving(answering(DEEP, "application/json")) as deep:
        # The first collection.json look-up is redirected to the deep answer.
        nasa_double.faults = {"collection": [f"redirect:http://{deep}/collection.json"]}
        env = local_env(nasa_double, tmp_path, NASA_ALLOWED_HOSTS=f"{nasa_double.host},{deep}")
        result = materialize_pages(env, "0001")
    assert result.success
    rejected = read_table((tmp_path / "rejected/0001.parquet").read_bytes())
    assert list(rejected["reason"]) == ["collection.json: JSON nested too deeply to decode"]
    assert len(read_table((tmp_path / "moon_images/0001.parquet").read_bytes())) == 99


@pytest.mark.parametrize("with_length", [True, False])
def test_an_answer_over_the_size_cap_is_refused_while_streaming(with_length):
    body = b'["' + b"x" * MAX_ANSWER_BYTES + b'"]'
    with serving(answering(body, "application/json", with_length=with_length)) as host:
        client = make_client(host, [])
        with pytest.raises(FetchError, match=f"^answer larger than {MAX_ANSWER_BYTES} bytes"):
            client.collection(f"http://{host}/c.json")
        with pytest.raises(NasaApiError, match=f"^search page 1: answer larger than {MAX_ANSWER_BYTES} bytes"):
            client.search_page("moon", 1)


# --- the whole-response deadline ------------------------------------------------------------------


def test_a_trickling_image_gives_up_after_its_attempts_and_stores_nothing(tmp_path):
    sleeps, paths = [], []
    # 20 bytes a second: no read times out, and the 4 KB body would take minutes. (The double's
    # trickle fault sends once a second, so each attempt would cost a second; it is exercised by
    # the page test below.)
    image = b"\xff\xd8\xff\xe0" + bytes(4_000)
    with serving(trickling(image, per_byte=0.05, content_type="image/jpeg", paths=paths)) as host:
        client = make_client(host, sleeps, read_timeout=3.0, download_timeout=0.1)
        url = f"http://{host}/image/X/X~large.jpg"
        with pytest.raises(FetchError) as raised:
            bounded(lambda: download_to_store(client, LocalStore(tmp_path), url, "images/x.jpg", 10 * MB), 60)
    assert raised.value.reason == "download took longer than NASA_DOWNLOAD_TIMEOUT=0.1 s; gave up after 3 attempts"
    assert paths == ["/image/X/X~large.jpg"] * 3 and len(sleeps) == 2
    assert not (tmp_path / "images").exists()


def test_a_trickling_search_page_or_collection_json_times_out():
    # 15 s for the whole body, cut off at 0.1 s (at once, if the machine stalls the headers).
    with serving(trickling(b'{"collection": {"items": []}}' * 10, per_byte=0.05)) as host:
        client = make_client(host, [], download_timeout=0.1, max_retries=1)
        with pytest.raises(NasaApiError, match="^search page 1: GET .* failed after 2 attempts: download took "
                                               "longer than NASA_DOWNLOAD_TIMEOUT=0.1 s$"):
            bounded(lambda: client.search_page("moon", 1), 60)
        with pytest.raises(FetchError, match="failed after 2 attempts: download took longer than"):
            bounded(lambda: client.collection(f"http://{host}/c.json"), 60)


def test_a_page_with_trickling_images_stores_the_others_and_fails_those(tmp_path, nasa_double):
    # 2 s keeps a normal image well clear of the deadline on a busy machine; the retry waits
    # are not what is asserted.
    env = local_env(nasa_double, tmp_path, NASA_DOWNLOAD_TIMEOUT="2", NASA_MAX_RETRIES="1",
                    NASA_RETRY_BACKOFF_SECONDS="0.01")
    ids = [item["data"][0]["nasa_id"] for item in nasa_double.corpus()[:100]]
    slow = ids[3:7]
    nasa_double.faults = {"by_id": {nasa_id: "trickle:1" for nasa_id in slow}}

    # Without the deadline this run never ends: 1 byte a second of a ~20 KB image.
    result = bounded(lambda: materialize_pages(env, "0001"), 300)
    assert result.success

    images = read_table((tmp_path / "moon_images/0001.parquet").read_bytes()).set_index("nasa_id")
    failed = images[images["status"] == "failed"]
    assert sorted(failed.index) == sorted(slow)
    assert set(failed["error"]) == {"download took longer than NASA_DOWNLOAD_TIMEOUT=2 s; gave up after 3 attempts"}
    stored = images[images["status"] == "stored"]
    assert len(stored) == 96
    for nasa_id, row in stored.iterrows():
        assert (tmp_path / row["image_key"]).read_bytes() == nasa_double.image_bytes_for(nasa_id, "large")
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        k.removeprefix("images/") for k in stored["image_key"])
    assert nasa_double.counts["image"] == 96 + 3 * len(slow)


# --- the breaker in a page run ----------------------------------------------------------------------


def test_a_file_host_outage_fails_the_page_fast_and_a_later_run_stores_it(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path, NASA_FILE_HOST_PAUSE_SECONDS="0.2")
    nasa_double.faults = {"always": {"image": "503"}}

    result = bounded(lambda: materialize_pages(env, "0001"), 120)
    assert result.success  # the images_complete check (not blocking) shows the failures

    images = read_table((tmp_path / "moon_images/0001.parquet").read_bytes())
    assert len(images) == 100
    assert set(images["status"]) == {"failed"} and set(images["error"]) == {"file host unavailable"}
    assert not (tmp_path / "images").exists()
    # Not 100 images x (1 + NASA_MAX_RETRIES): the requests in flight when it opened, and one probe.
    sent = nasa_double.counts["image"]
    assert sent <= 16 + BREAKER_THRESHOLD + 1
    metadata = result.asset_materializations_for_node("moon_images")[0].metadata
    assert {k: metadata[k].value for k in ("file_host_requests", "file_host_failures", "breaker_opened",
                                           "file_host_unavailable")} == {
        "file_host_requests": sent, "file_host_failures": sent, "breaker_opened": True,
        "file_host_unavailable": True}
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "images_complete")
    assert not check.passed

    nasa_double.faults = {}  # the host is back: the next run (the repair sensor's) stores the page
    nasa_double.reset_counts()
    assert materialize_pages(env, "0001").success
    images = read_table((tmp_path / "moon_images/0001.parquet").read_bytes())
    assert set(images["status"]) == {"stored"} and nasa_double.counts["image"] == 100


def test_a_short_outage_pauses_the_downloads_and_they_resume(tmp_path, nasa_double):
    """The host fails until the breaker has opened, then recovers: the probe after the pause
    succeeds and every image is stored. The outage ends on an observed request count, not on a
    timer, so how many requests were in flight when the breaker opened does not matter."""
    env = local_env(nasa_double, tmp_path, NASA_FILE_HOST_PAUSE_SECONDS="2", NASA_MAX_RETRIES="4")
    nasa_double.faults = {"always": {"image": "503"}}
    outage_over = threading.Event()

    def end_outage_after_ten_failures():
        deadline = time.monotonic() + 60
        while nasa_double.counts["image"] < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        nasa_double.faults = {}
        outage_over.set()

    threading.Thread(target=end_outage_after_ten_failures, daemon=True).start()
    result = bounded(lambda: materialize_pages(env, "0001"), 120)
    assert outage_over.is_set() and result.success
    images = read_table((tmp_path / "moon_images/0001.parquet").read_bytes())
    assert set(images["status"]) == {"stored"}
    metadata = result.asset_materializations_for_node("moon_images")[0].metadata
    # Every request the step sent reached the double, and each failure was one of its 503s.
    assert metadata["file_host_requests"].value == nasa_double.counts["image"]
    assert metadata["file_host_failures"].value >= 10
    assert metadata["file_host_failures"].value == metadata["file_host_requests"].value - 100
    assert metadata["breaker_opened"].value is True and metadata["file_host_unavailable"].value is False


# --- https on NASA's file host ----------------------------------------------------------------------


def test_only_nasas_file_host_is_upgraded_to_https():
    assert upgraded("http://images-assets.nasa.gov/image/a/a~large.jpg") == (
        "https://images-assets.nasa.gov/image/a/a~large.jpg")
    assert upgraded("http://IMAGES-ASSETS.nasa.gov/x?y=1") == "https://IMAGES-ASSETS.nasa.gov/x?y=1"
    for unchanged in ("https://images-assets.nasa.gov/x", "http://127.0.0.1:8080/image/a/a~large.jpg",
                      "http://images-assets.nasa.gov:8080/x", "http://example.org/x", "http://[::1/x"):
        assert upgraded(unchanged) == unchanged
    entry = {"nasa_id": "a", "image_key": "images/a.jpg", "rendition": "large",
             "image_url": "http://images-assets.nasa.gov/image/a/a~large.jpg"}
    assert image_row(entry, "failed", error="x")["source_url"] == "https://images-assets.nasa.gov/image/a/a~large.jpg"


@contextlib.contextmanager
def recording_proxy():
    """An HTTP proxy on 127.0.0.1 that records what it is asked for and refuses it all."""
    seen = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def refuse(self):
            seen.append(f"{self.command} {self.path}")
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_CONNECT = do_GET = refuse

    with serving(Proxy) as host:
        yield host, seen


def test_http_urls_on_nasas_file_host_go_out_over_https(monkeypatch):
    with recording_proxy() as (proxy, seen):
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, f"http://{proxy}")
        client = NasaClient(base_url="https://images-api.nasa.gov",
                            allowed_hosts=parse_allowed_hosts("images-assets.nasa.gov"),
                            rate_limiter=RateLimiter(10), max_retries=0)
        with pytest.raises(FetchError):  # the proxy refuses; what matters is what it was asked
            client.open_file("http://images-assets.nasa.gov/image/a/a~large.jpg")
        with pytest.raises(FetchError):
            client.collection("http://images-assets.nasa.gov/image/a/collection.json")
    # A tunnel to port 443 (TLS), never a plain GET of the http:// URL through the proxy.
    assert seen == ["CONNECT images-assets.nasa.gov:443"] * 2


# --- IPv6 hosts -------------------------------------------------------------------------------------


def test_bracketed_ipv6_entries_are_parsed_and_matched():
    assert parse_allowed_hosts("[::1]:8080, [::1], images-assets.nasa.gov") == (
        ("::1", 8080), ("::1", None), ("images-assets.nasa.gov", None))
    allowed = parse_allowed_hosts("[::1]:8080")
    assert url_block_reason("http://[::1]:8080/x.jpg", allowed) is None
    assert url_block_reason("http://[::1]:8081/x.jpg", allowed) == "host [::1]:8081 is not in NASA_ALLOWED_HOSTS"
    assert url_block_reason("http://[::1]/x.jpg", allowed) == "host [::1]:80 is not in NASA_ALLOWED_HOSTS"
    assert url_block_reason("http://[::1]/x.jpg", parse_allowed_hosts("[::1]")) is None
    assert url_block_reason("https://[::1]/x.jpg", parse_allowed_hosts("[::1]")) is None
    for bad in ("[::1", "[::1]x", "[]:80", "[::1]:", "[::1]:http", "[::1]:70000"):
        with pytest.raises(ValueError, match="NASA_ALLOWED_HOSTS"):
            parse_allowed_hosts(bad)


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def test_an_image_on_an_ipv6_host_is_downloaded(tmp_path, nasa_double):
    body = nasa_double.image_bytes_for(nasa_double.corpus()[1]["data"][0]["nasa_id"], "large")
    try:
        server = _V6Server(("::1", 0), answering(body, "image/jpeg"))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        host = f"[::1]:{server.server_address[1]}"
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10))
        facts = download_to_store(client, LocalStore(tmp_path), f"http://{host}/x~large.jpg", "images/x.jpg", MB)
    finally:
        server.shutdown()
        server.server_close()
    assert facts.bytes == len(body) and (tmp_path / "images/x.jpg").read_bytes() == body
