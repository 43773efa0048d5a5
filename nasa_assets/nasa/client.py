"""HTTP client for the NASA search API and its file host: pooled, timed out, retried, budgeted.

Retries are done here rather than by urllib3 so that every attempt at the search API passes
through the rate limiter, and so that error messages never carry the API key.
"""

import email.utils
import random
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ContentDecodingError

from nasa_assets.nasa.parsing import SearchPage, SearchResponseError, is_results_cap, parse_search_response
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import redact, url_block_reason

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A request that broke off on the wire: no connection, a reset, a stall past the read timeout,
# or a body shorter than its Content-Length. Worth retrying; the message is never kept (it can
# carry the URL, query string included).
TRANSIENT_ERRORS = (
    requests.ConnectionError, requests.Timeout, ChunkedEncodingError, ContentDecodingError,
)
MAX_REDIRECTS = 5
USER_AGENT = "nasa_assets/0.1 (+https://github.com/; dataset builder)"


def describe_transient(error: BaseException) -> str:
    """The error's type and, when one is found in its chain, the OS-level cause, e.g.
    "ConnectionError ([Errno 111] Connection refused)". Built from errno and strerror only,
    never from a message, so no URL (or api_key) can leak through it."""
    seen, todo = set(), [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.errno, int) and current.strerror:
            return f"{type(error).__name__} ([Errno {current.errno}] {current.strerror})"
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return type(error).__name__


class NasaApiError(RuntimeError):
    """The search API failed in a way retries did not fix. Messages are safe to log."""


class FetchError(RuntimeError):
    """A file-host request failed; `reason` is what the dataset records for the item."""

    def __init__(self, reason: str, transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


class NasaClient:
    def __init__(
        self,
        *,
        base_url: str,
        allowed_hosts: tuple[tuple[str, int | None], ...],
        rate_limiter: RateLimiter,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.allowed_hosts = allowed_hosts
        self.rate_limiter = rate_limiter
        self._api_key = api_key or None
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.api_requests = 0
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    # --- transport -------------------------------------------------------------------------

    def _delay(self, attempt: int, response: requests.Response | None = None) -> float:
        hinted = _retry_after(response) if response is not None else None
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

    def _get(
        self, url: str, *, params: dict | None = None, stream: bool = False,
        limited: bool = False, may_visit: Callable[[str], str | None],
    ) -> requests.Response:
        """GET with retries on 429/5xx and connection errors, following only allowed redirects.

        Returns the final response, whatever its status once retries are spent. Raises FetchError
        for a refused URL or a request that cannot be sent, and requests.ConnectionError (message
        redacted) when no complete response came. A non-streamed body is read here, so one cut
        short is retried too.
        """
        last_problem = ""
        last_response: requests.Response | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self._delay(attempt - 1, last_response))
            last_response = None
            target, target_params = url, params
            try:
                for _ in range(MAX_REDIRECTS + 1):
                    blocked = may_visit(target)
                    if blocked:
                        raise FetchError(f"refused {self._shown(target)}: {blocked}")
                    if limited:
                        self.rate_limiter.acquire()
                        self.api_requests += 1
                    response = self.session.get(
                        target, params=target_params, timeout=self.timeout, stream=stream,
                        allow_redirects=False,
                    )
                    if response.is_redirect and response.headers.get("Location"):
                        target = urljoin(response.url, response.headers["Location"])
                        target_params = None
                        response.close()
                        continue
                    break
                else:
                    raise FetchError(f"too many redirects from {self._shown(url)}")
            except TRANSIENT_ERRORS as error:
                last_problem = describe_transient(error)
                continue
            except requests.RequestException as error:  # e.g. a URL requests cannot send
                problem = type(error).__name__
                raise FetchError(f"GET {self._shown(target)} failed: {problem}") from None
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                last_problem = f"HTTP {response.status_code}"
                last_response = response
                response.close()
                continue
            return response
        raise requests.ConnectionError(
            f"GET {self._shown(url)} failed after {self.max_retries + 1} attempts: {last_problem}"
        )

    def _api_host_only(self, target: str) -> str | None:
        base = urlsplit(self.base_url)
        parts = urlsplit(target)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return "redirect away from the API host"
        return None

    def _file_host_only(self, target: str) -> str | None:
        return url_block_reason(target, self.allowed_hosts)

    # --- the search API ----------------------------------------------------------------------

    def search_page(self, query: str, page: int, page_size: int = 100) -> SearchPage:
        """One page of `q=query&media_type=image`; past the API's 10,000-hit cap: an empty page."""
        params = {"q": query, "media_type": "image", "page": page, "page_size": page_size}
        if self._api_key:
            params["api_key"] = self._api_key
        url = f"{self.base_url}/search"
        try:
            response = self._get(url, params=params, limited=True, may_visit=self._api_host_only)
        except (requests.ConnectionError, FetchError) as error:
            raise NasaApiError(f"search page {page}: {error}") from None
        with response:
            if response.status_code == 400 and is_results_cap(_reason(response)):
                return SearchPage(exhausted=True)
            if response.status_code != 200:
                raise NasaApiError(
                    f"search page {page}: HTTP {response.status_code} {_reason(response)[:200]}".strip()
                )
            try:
                return parse_search_response(response.json())
            except (ValueError, SearchResponseError) as error:
                raise NasaApiError(f"search page {page}: {str(error)[:200]}") from None

    # --- the file host -------------------------------------------------------------------------

    def collection(self, url: str) -> list[str]:
        """An item's collection.json: the list of its file URLs. FetchError reasons do not repeat
        "collection.json"; the caller names what was being fetched."""
        try:
            response = self._get(url, may_visit=self._file_host_only)
        except requests.ConnectionError as error:
            raise FetchError(str(error), transient=True) from None
        with response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from the file host")
            try:
                body = response.json()
            except ValueError:
                raise FetchError("not JSON") from None
        if not isinstance(body, list):
            raise FetchError("not a list of URLs")
        return [u for u in body if isinstance(u, str)]

    def open_file(self, url: str) -> requests.Response:
        """A streaming 200 response for a file URL; the caller closes it."""
        try:
            response = self._get(url, stream=True, may_visit=self._file_host_only)
        except requests.ConnectionError as error:
            raise FetchError(str(error), transient=True) from None
        if response.status_code != 200:
            response.close()
            raise FetchError(
                f"HTTP {response.status_code} from the file host",
                transient=response.status_code in RETRY_STATUSES,
            )
        return response
