"""Download one image from the file host into storage: retried on a broken transfer, measured on
the way, stored only when the whole file arrived and passed validation."""

import tempfile

import requests

from nasa_assets.dataset.imaging import (
    CONTENT_TYPES,
    SPOOL_IN_MEMORY,
    ImageFacts,
    ImageMeter,
    ImageRejected,
    source_digest,
)
from nasa_assets.nasa.breaker import UNAVAILABLE, Breaker
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.errors import TRANSIENT_ERRORS, DeadlineExceeded, FetchError
from nasa_assets.storage import ObjectStore


def download_to_store(
    client: NasaClient, store: ObjectStore, url: str, key: str, max_bytes: int, attempts: int = 3,
    breaker: Breaker | None = None,
) -> ImageFacts:
    """Download `url` into `store` under `key`; nothing is stored unless the whole file arrived
    and passed validation.

    A transfer that breaks off mid-body (reset, stall past the read timeout, fewer bytes than
    Content-Length, longer than the client's download_timeout) is retried from the start, at most
    `attempts` times, after the client's backoff with jitter. Errors before the body (HTTP 429/5xx,
    no connection) were already retried by the client and are final here, so retries do not
    multiply. `breaker`, shared by a step's downloads, stops them when the host is down."""
    problem = ""
    for attempt in range(attempts):
        if attempt:
            if breaker is not None and breaker.down:
                raise FetchError(UNAVAILABLE)
            client.pause(attempt - 1)
        try:
            return _download_once(client, store, url, key, max_bytes, breaker)
        except DeadlineExceeded as error:
            problem = str(error)
        except TRANSIENT_ERRORS as error:
            problem = f"transfer interrupted ({type(error).__name__})"
        except requests.RequestException as error:  # its message may carry the URL
            raise FetchError(f"request failed ({type(error).__name__})") from None
    raise FetchError(f"{problem}; gave up after {attempts} attempts", transient=True)


def _download_once(client, store, url, key, max_bytes, breaker) -> ImageFacts:
    response = client.open_file(url, breaker)
    with response:
        declared = response.headers.get("Content-Length", "").strip()
        declared = int(declared) if declared.isascii() and declared.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise ImageRejected(f"larger than MAX_IMAGE_BYTES ({declared} > {max_bytes} bytes)")
        meter = ImageMeter(max_bytes)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            if declared is not None and declared > SPOOL_IN_MEMORY:
                spool.rollover()  # straight to disk: no 4 MB buffer per stream, no copy at rollover
            for chunk in client.iter_body(response, breaker=breaker):
                meter.feed(chunk)
                spool.write(chunk)
            facts = meter.finish(spool)
            spool.seek(0)
            store.put_file(key, spool, content_type=CONTENT_TYPES[facts.format],
                           metadata=facts.as_metadata() | {"source": source_digest(url)})
    return facts
