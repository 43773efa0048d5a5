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


SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger bodies go to a temporary file while downloading
MAX_PIXELS = 200_000_000  # a NASA original is at most ~100 MP; beyond this it is a decompression bomb
# A complete JPEG ends with its EOI marker, a PNG with its IEND chunk; looked for in the last bytes,
# which tolerates data appended after them (some cameras do) but not a file cut short at the source.
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
TAIL_BYTES = 64 * 1024
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


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def truncation(image: ImageFile.ImageFile | None, spool, size: int) -> str | None:
    """Why the spooled file of `size` bytes is cut short, or None. Reads its first bytes, its last
    64 KB and (GIF) block headers, never pixels; `image` is its lazily opened header, if any."""
    spool.seek(0)
    first = spool.read(16)
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        declared = int.from_bytes(first[4:8], "little") + 8  # RIFF states its own size
        return f"WEBP data is truncated ({size} of {declared} bytes)" if size < declared else None
    if first[:6] in (b"GIF87a", b"GIF89a"):
        spool.seek(0)
        return None if _gif_reaches_trailer(spool) else "GIF data is truncated (ends before its trailer)"
    if first[:4] in _TIFF_MAGIC:
        return _tiff_truncation(image, spool, first, size)
    if image is not None and (end := END_MARKERS.get(image.format or "")):
        spool.seek(max(0, size - TAIL_BYTES))
        if end not in spool.read(TAIL_BYTES):
            return f"{image.format} data ends without its end marker (cut short)"
    return None


def _gif_reaches_trailer(f) -> bool:
    """Walks a GIF's blocks (sub-block lengths only) to its trailer; False when the file ends first.
    Hand-rolled because Pillow takes a GIF that stops before its trailer as complete, and a tail
    check cannot tell the trailer byte from LZW data."""

    def skip_table(flags: int) -> None:
        if flags & 0x80:
            f.seek(3 * 2 ** ((flags & 7) + 1), 1)

    def skip_sub_blocks() -> bool:
        while (length := f.read(1)) and length[0]:
            f.seek(length[0], 1)
        return bool(length)

    screen = f.read(13)
    if len(screen) < 13:
        return False
    skip_table(screen[10])
    while block := f.read(1):
        if block == b";":
            return True
        if block == b"!":  # extension: a label, then sub-blocks
            if not f.read(1) or not skip_sub_blocks():
                return False
        elif block == b",":  # image: descriptor, optional colour table, LZW code size, sub-blocks
            descriptor = f.read(9)
            if len(descriptor) < 9:
                return False
            skip_table(descriptor[8])
            if not f.read(1) or not skip_sub_blocks():
                return False
        else:
            return True  # bytes after the last image that are no block: not ours to judge
    return False


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _tiff_truncation(image, f, first: bytes, size: int) -> str | None:
    order = "little" if first[:2] == b"II" else "big"
    directory = int.from_bytes(first[4:8], order)
    # libtiff writes the directory (and the values it points to) last: a cut file lacks them.
    if _tiff_directory_end(f, directory, order) > size:
        return f"TIFF data is truncated ({size} bytes, its directory runs past the end)"
    if image is None:
        return None
    tags = image.tag_v2  # strip or tile extents, as Pillow read them from the directory
    offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if offsets is None or counts is None:
        return None
    offsets = (offsets,) if isinstance(offsets, int) else offsets
    counts = (counts,) if isinstance(counts, int) else counts
    end = max((o + c for o, c in zip(offsets, counts)), default=0)
    return f"TIFF data is truncated ({size} bytes, its image data runs to byte {end})" if end > size else None


def _tiff_directory_end(f, directory: int, order: str) -> int:
    """Where the first directory of a classic TIFF ends, with the values its entries point to.
    Hand-rolled because Pillow reads a directory cut short without complaint (it only warns)."""
    f.seek(directory)
    raw = f.read(2)
    if len(raw) < 2:
        return directory + 2 + 4  # past the end in any case
    entries = int.from_bytes(raw, order)
    end = directory + 2 + 12 * entries + 4
    table = f.read(12 * entries)
    for i in range(0, len(table) - 11, 12):
        kind, count = int.from_bytes(table[i + 2:i + 4], order), int.from_bytes(table[i + 4:i + 8], order)
        length = count * _TIFF_TYPE_SIZES.get(kind, 1)
        if length > 4:  # stored elsewhere, at the offset the entry gives
            end = max(end, int.from_bytes(table[i + 8:i + 12], order) + length)
    return end


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
            cut = truncation(image, spool, self.size)
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


def source_digest(url: str) -> str:
    """Where an object came from, as stored with it: ASCII-safe for S3 metadata, and the same for
    the same URL, so a later run can tell a stored image from another source's under its key."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
