"""The HTTP transport under NasaClient: pooled, timed out, retried, budgeted.

Retries are done here rather than by urllib3 so that every attempt at the search API passes
through the rate limiter, and so that error messages never carry the API key.
"""

import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from nasa_assets.nasa.breaker import UNAVAILABLE, Breaker
from nasa_assets.nasa.errors import (
    RETRY_STATUSES,
    TRANSIENT_ERRORS,
    DeadlineExceeded,
    FetchError,
    as_requests_error,
    describe_transient,
    retry_after,
)
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import redact, upgraded

MAX_REDIRECTS = 5
CHUNK = 256 * 1024
# A search page is about 1 MB and a collection.json a few KB; anything near this is not an answer.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
# Consecutive failures after which a step stops sending requests to the file host and pauses.
BREAKER_THRESHOLD = 10
USER_AGENT = "nasa_assets/0.1 (+https://github.com/; dataset builder)"
# The longest wait before a retry, Retry-After included: longer would hold a step for nothing.
MAX_BACKOFF = 30.0


class Transport:
    """A pooled session to one API and its file host: timeouts, retries with jittered backoff,
    allowed redirects only, the rate limiter on API requests, a deadline and size cap on bodies."""

    def __init__(
        self,
        *,
        base_url: str,
        allowed_hosts: tuple[tuple[str, int | None], ...],
        rate_limiter: RateLimiter,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        download_timeout: float = 600.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = MAX_BACKOFF,
        breaker_pause: float = 30.0,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.allowed_hosts = allowed_hosts
        self.rate_limiter = rate_limiter
        self._api_key = api_key or None
        self.timeout = (connect_timeout, read_timeout)
        self.download_timeout = download_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.breaker_pause = breaker_pause
        self._sleep = sleep
        self.api_requests = 0
        self._count_lock = threading.Lock()  # search pages may be fetched from several threads
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def new_breaker(self) -> Breaker:
        """A breaker for one step's file-host requests (collection.json look-ups, image downloads)."""
        return Breaker(BREAKER_THRESHOLD, self.breaker_pause)

    def _delay(self, attempt: int, response: requests.Response | None = None) -> float:
        hinted = retry_after(response.headers.get("Retry-After")) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_backoff)
        # Full jitter: concurrent steps that failed together do not retry together.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def _shown(self, url: str) -> str:
        """A URL for a message: secret query values redacted, and the API key wherever it hides."""
        shown = redact(url)
        return shown.replace(self._api_key, "REDACTED") if self._api_key else shown

    def pause(self, attempt: int) -> None:
        """Sleep before retry number attempt + 1 of something larger than one request."""
        self._sleep(self._delay(attempt))

    def iter_body(
        self, response: requests.Response, limit: int | None = None, breaker: Breaker | None = None
    ):
        """A streamed body in chunks as they arrive. Raises DeadlineExceeded once the request is
        older than download_timeout: a body trickling in never trips the per-read timeout, so the
        whole response is bounded here. FetchError when the body exceeds `limit` bytes."""
        deadline = time.monotonic() - response.elapsed.total_seconds() + self.download_timeout
        declared = response.headers.get("Content-Length", "").strip()
        if limit and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"answer larger than {limit} bytes (Content-Length {declared})")
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise DeadlineExceeded(
                    f"download took longer than NASA_DOWNLOAD_TIMEOUT={self.download_timeout:g} s"
                )
            try:
                # read1: whatever arrived, after at most one read timeout, so the deadline is seen.
                chunk = response.raw.read1(CHUNK, decode_content=True)
            except (ProtocolError, ReadTimeoutError, DecodeError, SSLError) as error:
                if breaker is not None:
                    breaker.failure()
                raise as_requests_error(error) from None
            if not chunk:
                return
            size += len(chunk)
            if limit and size > limit:
                raise FetchError(f"answer larger than {limit} bytes")
            yield chunk

    def _send(self, target: str, params: dict | None, breaker: Breaker | None) -> requests.Response:
        if breaker is not None and not breaker.before_request():
            raise FetchError(UNAVAILABLE)
        try:
            response = self.session.get(
                target, params=params, timeout=self.timeout, stream=True, allow_redirects=False
            )
        except TRANSIENT_ERRORS:
            if breaker is not None:
                breaker.failure()
            raise
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            (breaker.failure if response.status_code in RETRY_STATUSES else breaker.success)()
        return response

    def _get(
        self, url: str, *, params: dict | None = None, read_body: bool = True,
        limited: bool = False, may_visit: Callable[[str], str | None], breaker: Breaker | None = None,
    ) -> tuple[requests.Response, bytes | None]:
        """GET with retries on 429/5xx and connection errors, following only allowed redirects.

        Returns the final response, whatever its status once retries are spent, and its body when
        `read_body` (read here within the deadline and size cap, so one cut short is retried too;
        the response is then closed). Raises FetchError for a refused URL, a request that cannot be
        sent, an open breaker or a Retry-After longer than max_backoff (without a breaker), and
        requests.ConnectionError (message redacted) when no complete response came.
        """
        last_problem = ""
        last_response: requests.Response | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                if breaker is not None and breaker.down:
                    raise FetchError(UNAVAILABLE)
                self._sleep(self._delay(attempt - 1, last_response))
            last_response = None
            target, target_params = url, params
            try:
                for _ in range(MAX_REDIRECTS + 1):
                    target = upgraded(target)
                    blocked = may_visit(target)
                    if blocked:
                        raise FetchError(f"refused {self._shown(target)}: {blocked}")
                    if limited:
                        self.rate_limiter.acquire()
                        with self._count_lock:
                            self.api_requests += 1
                    response = self._send(target, target_params, breaker)
                    if response.is_redirect and response.headers.get("Location"):
                        target = urljoin(response.url, response.headers["Location"])
                        target_params = None
                        response.close()
                        continue
                    break
                else:
                    raise FetchError(f"too many redirects from {self._shown(url)}")
                status = response.status_code
                if status in RETRY_STATUSES:
                    hinted = retry_after(response.headers.get("Retry-After"))
                    if hinted is not None and hinted > self.max_backoff:
                        # Waiting that long per request would hold the step; the breaker pauses all
                        # of the step's requests once instead, and without one the attempt ends.
                        response.close()
                        if breaker is None:
                            raise FetchError(
                                f"HTTP {status} asking to retry after {hinted:.0f} s, longer than the "
                                f"{self.max_backoff:g} s this client waits", transient=True,
                            )
                        breaker.trip()
                        last_problem = f"HTTP {status}"
                        continue
                    if attempt < self.max_retries:
                        last_problem, last_response = f"HTTP {status}", response
                        response.close()
                        continue
                    if breaker is not None and breaker.down:
                        response.close()
                        raise FetchError(UNAVAILABLE)
                if not read_body:
                    return response, None
                with response:
                    return response, b"".join(self.iter_body(response, MAX_ANSWER_BYTES, breaker))
            except DeadlineExceeded as error:
                last_problem = str(error)
            except TRANSIENT_ERRORS as error:
                last_problem = describe_transient(error)
            except requests.RequestException as error:  # e.g. a URL requests cannot send
                problem = type(error).__name__
                raise FetchError(f"GET {self._shown(target)} failed: {problem}") from None
        if breaker is not None and breaker.down:
            raise FetchError(UNAVAILABLE)
        raise requests.ConnectionError(
            f"GET {self._shown(url)} failed after {self.max_retries + 1} attempts: {last_problem}"
        )
