"""Stream one image from the file host into storage, measuring it on the way. No full decode."""

import hashlib
import io
import tempfile
import warnings
from dataclasses import asdict, dataclass

import requests
from PIL import Image

from nasa_assets.nasa.client import FetchError, NasaClient
from nasa_assets.storage import ObjectStore

CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger bodies go to a temporary file while downloading
HEADER_PROBES = (64 * 1024, 512 * 1024, 4 * 1024 * 1024)  # where EXIF-heavy JPEGs put their SOF
MAX_PIXELS = 200_000_000  # a NASA original is at most ~100 MP; beyond this it is a decompression bomb
# Pillow refuses in Image.open above twice its limit; align that with ours so one rule decides.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff", "GIF": "image/gif",
                 "WEBP": "image/webp"}


class ImageRejected(Exception):
    """The file is not an acceptable image; `reason` is recorded for the item."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ImageFacts:
    bytes: int
    sha256: str
    width: int
    height: int
    format: str

    def as_metadata(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "ImageFacts | None":
        try:
            return cls(int(meta["bytes"]), meta["sha256"], int(meta["width"]), int(meta["height"]),
                       meta["format"])
        except (KeyError, ValueError):
            return None


def read_header(head: bytes) -> tuple[int, int, str] | None:
    """(width, height, format) from the first bytes of a file, or None if not yet decidable."""
    with warnings.catch_warnings():
        # Pillow warns about large images before deciding; we apply our own pixel limit below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(head)) as image:
                width, height = image.size
                fmt = image.format or ""
        except Image.DecompressionBombError:
            raise ImageRejected(f"declares more than {MAX_PIXELS} pixels (decompression bomb)") from None
        except Exception:
            return None
    return width, height, fmt


class ImageMeter:
    """Hashes, counts and reads dimensions from chunks as they stream past."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._probe = 0
        self.header: tuple[int, int, str] | None = None

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ImageRejected(f"larger than MAX_IMAGE_BYTES ({self.max_bytes} bytes)")
        self._hash.update(chunk)
        if self.header is None and self._probe < len(HEADER_PROBES):
            self._head += chunk[: HEADER_PROBES[-1] - len(self._head)]
            while self._probe < len(HEADER_PROBES) and len(self._head) >= HEADER_PROBES[self._probe]:
                self._probe += 1
                self._try_header()

    def _try_header(self) -> None:
        self.header = read_header(bytes(self._head))
        if self.header:
            self._head = bytearray()  # no longer needed; keep memory flat

    def finish(self) -> ImageFacts:
        if self.header is None and self._head:
            self._try_header()
        if self.header is None:
            raise ImageRejected("not a decodable image")
        width, height, fmt = self.header
        if fmt not in CONTENT_TYPES:
            raise ImageRejected(f"unsupported image format {fmt or 'unknown'}")
        if width * height > MAX_PIXELS:
            raise ImageRejected(f"{width}x{height} pixels exceeds the {MAX_PIXELS} pixel limit")
        return ImageFacts(self.size, self._hash.hexdigest(), width, height, fmt)


def measure_stream(chunks, max_bytes: int) -> ImageFacts:
    """Facts of an already stored object, read back chunk by chunk."""
    meter = ImageMeter(max_bytes)
    for chunk in chunks:
        meter.feed(chunk)
    return meter.finish()


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def download_to_store(
    client: NasaClient, store: ObjectStore, url: str, key: str, max_bytes: int, attempts: int = 3
) -> ImageFacts:
    """Download `url` into `store` under `key`; nothing is stored unless the whole file arrived
    and passed validation. Truncated or reset transfers are retried from the start."""
    problem = ""
    for _attempt in range(attempts):
        try:
            return _download_once(client, store, url, key, max_bytes)
        except FetchError as error:
            if not error.transient:
                raise
            problem = error.reason
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            problem = f"transfer interrupted ({type(error).__name__})"
    raise FetchError(f"{problem}; gave up after {attempts} attempts", transient=True)


def _download_once(client, store, url, key, max_bytes) -> ImageFacts:
    response = client.open_file(url)
    with response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ImageRejected(f"larger than MAX_IMAGE_BYTES ({declared} > {max_bytes} bytes)")
        meter = ImageMeter(max_bytes)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in response.iter_content(CHUNK):
                meter.feed(chunk)
                spool.write(chunk)
            facts = meter.finish()
            spool.seek(0)
            store.put_file(key, spool, content_type=CONTENT_TYPES[facts.format],
                           metadata=facts.as_metadata())
    return facts
