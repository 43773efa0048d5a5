"""Measure one downloaded image: hash and byte cap while it streams, then Pillow reads the header
and a tail check tells a cut-short file, from the spooled copy. No full decode."""

import contextlib
import hashlib
import io
import os
import struct
import warnings
from dataclasses import asdict, dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from nasa_assets.dataset.truncation import truncation

# Where these lived before truncation.py; still importable from here.
from nasa_assets.dataset.truncation import END_MARKERS as END_MARKERS
from nasa_assets.dataset.truncation import TAIL_BYTES as TAIL_BYTES

SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger bodies go to a temporary file while downloading
MAX_PIXELS = 200_000_000  # a NASA original is at most ~100 MP; beyond this it is a decompression bomb
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


def open_image(source, max_pixels: int = MAX_PIXELS) -> ImageFile.ImageFile:
    """Image.open (lazy: the header only) with this call's pixel limit, the one ingestion applied,
    instead of Pillow's process-wide Image.MAX_IMAGE_PIXELS. `source` is a path, bytes or a
    seekable binary stream. Raises UnidentifiedImageError, or DecompressionBombError above
    `max_pixels`."""
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            prefix = f.read(16)
    else:
        source.seek(0)
        prefix = source.read(16)
    Image.init()
    # Image.open's own format detection, minus its check against the global limit: each plugin's
    # opener reads the header only.
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if not isinstance(source, str | os.PathLike):
            source.seek(0)
        try:
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):  # a string is a warning: no match either
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a damaged header is judged here, not warned about
                image = factory(source)
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError, EOFError):
            continue
        if image.width * image.height > max_pixels:
            with image:  # closes the file only if opened here (close() would close a caller's)
                raise Image.DecompressionBombError(
                    f"declares more than {max_pixels} pixels (decompression bomb)")
        return image
    raise UnidentifiedImageError("not an image format Pillow can read")


class ImageMeter:
    """Hashes and counts a body's chunks as they stream past, refusing it beyond `max_bytes`;
    `finish` then measures the complete spooled copy."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ImageRejected(f"larger than MAX_IMAGE_BYTES ({self.max_bytes} bytes)")
        self._hash.update(chunk)

    def finish(self, spool) -> ImageFacts:
        """The facts of the fed body, whose complete copy is the seekable `spool`: Pillow reads
        its header (no pixels), then its end is checked."""
        spool.seek(0)
        first = spool.read(30)
        if first[:4] == b"RIFF" and first[8:12] == b"WEBP" and (size := _webp_size(first)):
            return self._facts(None, spool, (*size, "WEBP"))
        if first[:3] == b"\xff\xd8\xff" and (size := _jpeg_size(spool)):
            return self._facts(None, spool, (*size, "JPEG"))
        try:
            image = open_image(spool)
        except UnidentifiedImageError:
            image = None
        except Image.DecompressionBombError as bomb:
            raise ImageRejected(str(bomb)) from None
        with image or contextlib.nullcontext():  # leaves the spool open, unlike image.close()
            header = (image.width, image.height, image.format or "") if image else None
            return self._facts(image, spool, header)

    def _facts(self, image, spool, header: tuple[int, int, str] | None) -> ImageFacts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged directory is judged here, not warned about
            cut = truncation(image, spool, self.size, header[2] if header else None)
        if cut:
            raise ImageRejected(cut)
        if header is None:
            raise ImageRejected("not a decodable image")
        width, height, fmt = header
        if fmt not in CONTENT_TYPES:
            raise ImageRejected(f"unsupported image format {fmt or 'unknown'}")
        if width * height > MAX_PIXELS:
            raise ImageRejected(f"declares more than {MAX_PIXELS} pixels (decompression bomb)")
        return ImageFacts(self.size, self._hash.hexdigest(), width, height, fmt)


def _webp_size(first: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first 30 bytes. Hand-rolled because Pillow's WebP opener
    reads the whole file into memory and allocates the canvas before it tells the size."""
    chunk = first[12:16]
    if chunk == b"VP8 " and first[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(first[26:28], "little") & 0x3FFF,
                int.from_bytes(first[28:30], "little") & 0x3FFF)
    if chunk == b"VP8X":
        return int.from_bytes(first[24:27], "little") + 1, int.from_bytes(first[27:30], "little") + 1
    if chunk == b"VP8L" and first[20] == 0x2F:
        bits = int.from_bytes(first[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# Start-of-frame markers (SOF0-SOF15 except DHT, JPG and DAC), which carry the image size.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(f) -> tuple[int, int] | None:
    """A JPEG's size from its frame header, reached by skipping each segment by its length; None
    when the markers do not lead there (Pillow then judges the file). Hand-rolled because Pillow's
    opener keeps every segment before the frame header in memory: a 60 MB JPEG whose size is
    mostly APP/EXIF data cost 60 MB per image being checked."""
    f.seek(2)
    while True:
        if f.read(1) != b"\xff":
            return None
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker or marker[0] in (0xD9, 0xDA):  # end of file or scan before any frame header
            return None
        if marker[0] == 0x01 or 0xD0 <= marker[0] <= 0xD8:  # markers without a segment
            continue
        length = int.from_bytes(f.read(2), "big")
        if length < 2:
            return None
        if marker[0] in _JPEG_FRAMES:
            frame = f.read(6)  # precision, height, width, components
            if len(frame) < 6 or frame[0] != 8 or frame[5] not in (1, 3, 4):
                return None  # 12-bit or odd component counts: Pillow judges (and refuses) those
            height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
            return (width, height) if width and height else None
        f.seek(length - 2, 1)


def source_digest(url: str) -> str:
    """Where an object came from, as stored with it: ASCII-safe for S3 metadata, and the same for
    the same URL, so a later run can tell a stored image from another source's under its key."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
