"""HTTP client for the NASA search API and its file host, on the transport in transport.py
(pooling, timeouts, retries, the rate limiter, deadlines; error messages never carry the API key).
"""

from urllib.parse import urlsplit

import requests

from nasa_assets.nasa.breaker import Breaker
from nasa_assets.nasa.errors import (
    RETRY_STATUSES,
    FetchError,
    NasaApiError,
    TooDeep,
    answer_reason,
    decode_json,
)
from nasa_assets.nasa.parsing import SearchPage, SearchResponseError, is_results_cap, parse_search_response
from nasa_assets.nasa.transport import Transport
from nasa_assets.nasa.urls import url_block_reason

# Names callers and tests have always imported from here.
from nasa_assets.nasa.errors import describe_transient as describe_transient
from nasa_assets.nasa.errors import retry_after as retry_after
from nasa_assets.nasa.transport import BREAKER_THRESHOLD as BREAKER_THRESHOLD
from nasa_assets.nasa.transport import CHUNK as CHUNK
from nasa_assets.nasa.transport import MAX_ANSWER_BYTES as MAX_ANSWER_BYTES
from nasa_assets.nasa.transport import MAX_REDIRECTS as MAX_REDIRECTS
from nasa_assets.nasa.transport import USER_AGENT as USER_AGENT


class NasaClient(Transport):
    """The search API and the file host's collection.json and files."""

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
            response, body = self._get(url, params=params, limited=True, may_visit=self._api_host_only)
        except (requests.ConnectionError, FetchError) as error:
            raise NasaApiError(f"search page {page}: {error}") from None
        if response.status_code == 400 and is_results_cap(answer_reason(response, body)):
            return SearchPage(exhausted=True)
        if response.status_code != 200:
            raise NasaApiError(
                f"search page {page}: HTTP {response.status_code} {answer_reason(response, body)[:200]}".strip()
            )
        try:
            return parse_search_response(decode_json(body))
        except (ValueError, SearchResponseError, RecursionError) as error:
            raise NasaApiError(f"search page {page}: {str(error)[:200]}") from None

    # --- the file host -------------------------------------------------------------------------

    def collection(self, url: str, breaker: Breaker | None = None) -> list[str]:
        """An item's collection.json: the list of its file URLs. FetchError reasons do not repeat
        "collection.json"; the caller names what was being fetched."""
        try:
            response, body = self._get(url, may_visit=self._file_host_only, breaker=breaker)
        except requests.ConnectionError as error:
            raise FetchError(str(error), transient=True) from None
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code} from the file host")
        try:
            decoded = decode_json(body)
        except TooDeep as error:
            raise FetchError(str(error)) from None
        except ValueError:
            raise FetchError("not JSON") from None
        if not isinstance(decoded, list):
            raise FetchError("not a list of URLs")
        return [u for u in decoded if isinstance(u, str)]

    def open_file(self, url: str, breaker: Breaker | None = None) -> requests.Response:
        """A streaming 200 response for a file URL (fetched over https on NASA's file host); the
        caller reads it with iter_body and closes it."""
        try:
            response, _ = self._get(url, read_body=False, may_visit=self._file_host_only, breaker=breaker)
        except requests.ConnectionError as error:
            raise FetchError(str(error), transient=True) from None
        if response.status_code != 200:
            response.close()
            raise FetchError(
                f"HTTP {response.status_code} from the file host",
                transient=response.status_code in RETRY_STATUSES,
            )
        return response
