"""How the NASA API and file host fail: the errors the client raises, which failures are worth
retrying, and the reasons recorded for them (never a URL, so never the api_key)."""

import email.utils
import json
import math
import re
import time

import requests
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from urllib3.exceptions import DecodeError, ReadTimeoutError, SSLError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A request that broke off on the wire: no connection, a reset, a stall past the read timeout,
# or a body shorter than its Content-Length. Worth retrying; the message is never kept (it can
# carry the URL, query string included).
TRANSIENT_ERRORS = (
    requests.ConnectionError, requests.Timeout, ChunkedEncodingError, ContentDecodingError,
)


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


class DeadlineExceeded(requests.Timeout):
    """A response took longer than the client's whole-response limit; transient, and its message
    (which names the setting, never the URL) is the reason recorded."""


class NasaApiError(RuntimeError):
    """The search API failed in a way retries did not fix. Messages are safe to log."""


class FetchError(RuntimeError):
    """A file-host request failed; `reason` is what the dataset records for the item."""

    def __init__(self, reason: str, transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date), or None when absent
    or unreadable. Never raises: a hostile value is at worst a very long wait (inf)."""
    value = (value or "").strip()
    if re.fullmatch(r"[0-9]+", value):  # ASCII only: str.isdigit() also accepts "²", float() not
        return float(value) if len(value) < 300 else math.inf
    try:
        seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class TooDeep(ValueError):
    """JSON nested deeper than the decoder's recursion allows: a bad answer, not a crash."""


def decode_json(body: bytes):
    """The JSON of a body; ValueError for anything else, including nesting too deep to decode."""
    try:
        return json.loads(body)
    except RecursionError:
        raise TooDeep("JSON nested too deeply to decode") from None


def answer_reason(response: requests.Response, body: bytes) -> str:
    try:
        decoded = decode_json(body)
    except ValueError:
        return response.reason or ""
    return str(decoded.get("reason", "")) if isinstance(decoded, dict) else ""


def as_requests_error(error: Exception) -> requests.RequestException:
    """urllib3's errors from reading a body, as requests' own iter_content would raise them."""
    if isinstance(error, ReadTimeoutError):
        return requests.ConnectionError(error)
    if isinstance(error, DecodeError):
        return ContentDecodingError(error)
    if isinstance(error, SSLError):
        return requests.exceptions.SSLError(error)
    return ChunkedEncodingError(error)
