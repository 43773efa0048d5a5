"""Stream one image from the file host into storage, measuring it on the way. No full decode."""

import hashlib
import io
import warnings
from dataclasses import asdict, dataclass

from PIL import Image


SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger bodies go to a temporary file while downloading
HEADER_PROBES = (64 * 1024, 512 * 1024, 4 * 1024 * 1024)  # where EXIF-heavy JPEGs put their SOF
# Beyond this a file is a decompression bomb (a NASA original is at most ~100 MP). It is where
# Image.open refuses with Pillow's default limit (twice Image.MAX_IMAGE_PIXELS), so one rule decides
# without changing Pillow's setting for the whole process (a training script importing the loader
# keeps its own).
MAX_PIXELS = 2 * 89_478_485
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


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def truncation(first: bytes, whole_file, size: int) -> str | None:
    """Why a GIF, WebP or TIFF file of `size` bytes is cut short, or None (complete, or another
    format). `first` is its first 16 bytes, `whole_file` a seekable copy; JPEG and PNG are judged by
    their end markers instead. Reads only block headers and directories, never pixels."""
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        declared = int.from_bytes(first[4:8], "little") + 8  # RIFF states its own size
        return f"WEBP data is truncated ({size} of {declared} bytes)" if size < declared else None
    if first[:6] in (b"GIF87a", b"GIF89a"):
        whole_file.seek(0)
        return None if _gif_reaches_trailer(whole_file) else "GIF data is truncated (ends before its trailer)"
    if first[:4] in _TIFF_MAGIC:
        directory = int.from_bytes(first[4:8], "little" if first[:2] == b"II" else "big")
        # libtiff writes the directory (and the values it points to) last: a cut file lacks them
        if _tiff_directory_end(whole_file, directory, "little" if first[:2] == b"II" else "big") > size:
            return f"TIFF data is truncated ({size} bytes, its directory runs past the end)"
        whole_file.seek(0)
        end = _tiff_data_end(whole_file)
        if end is not None and end > size:
            return f"TIFF data is truncated ({size} bytes, its image data runs to byte {end})"
    return None


def _gif_reaches_trailer(f) -> bool:
    """Walks a GIF's blocks (sub-block lengths only) to its trailer; False when the file ends first."""

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


def _tiff_directory_end(f, directory: int, order: str) -> int:
    """Where the first directory of a classic TIFF ends, with the values its entries point to."""
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


def _tiff_data_end(f) -> int | None:
    """Where the first image's strips or tiles end, from its directory; None if not readable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged directory is judged here, not warned about
            with Image.open(f) as image:
                tags = image.tag_v2
                offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    except Exception:
        return None
    if offsets is None or counts is None:
        return None
    offsets = (offsets,) if isinstance(offsets, int) else offsets
    counts = (counts,) if isinstance(counts, int) else counts
    return max((o + c for o, c in zip(offsets, counts)), default=None)


def read_header(head) -> tuple[int, int, str] | None:
    """(width, height, format) from the first bytes of a file (or a seekable file object), or None
    if not yet decidable."""
    with warnings.catch_warnings():
        # Pillow warns about large images before deciding; we apply our own pixel limit below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(head) if isinstance(head, bytes | bytearray) else head) as image:
                width, height = image.size
                fmt = image.format or ""
        except Image.DecompressionBombError:
            raise ImageRejected(f"declares more than {MAX_PIXELS} pixels (decompression bomb)") from None
        except Exception:
            return None
    return width, height, fmt


def open_image(source) -> Image.Image:
    """Image.open under this module's pixel rule: files up to MAX_PIXELS open without Pillow's
    warning from half of it (ingestion already accepted them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x00, 0x01}  # RSTn, SOI, stuffed 00, TEM: no length


class JpegFrameScanner:
    """A JPEG's width and height from its frame header (SOF), found by hopping over segment headers
    as chunks stream past, so a SOF behind megabytes of EXIF, XMP or comments needs no buffer."""

    def __init__(self):
        self.is_jpeg: bool | None = None  # None until the first three bytes are seen
        self.size: tuple[int, int] | None = None
        self.failed = False
        self._skip = 0  # segment payload still to pass over
        self._pending = b""  # a marker or segment header cut by the end of the last chunk

    def feed(self, chunk: bytes) -> None:
        if self.size or self.failed or self.is_jpeg is False:
            return
        if self._skip >= len(chunk):
            self._skip -= len(chunk)
            return
        data = memoryview(chunk)[self._skip:]
        if self._pending:
            data = memoryview(self._pending + bytes(data))
        self._skip, self._pending = 0, b""
        i, n = 0, len(data)
        if self.is_jpeg is None:
            if n < 3:
                self._pending = bytes(data)
                return
            self.is_jpeg = data[:3] == b"\xff\xd8\xff"
            if not self.is_jpeg:
                return
            i = 2
        while True:
            while i < n and data[i] != 0xFF:  # junk between segments, which Pillow tolerates too
                i += 1
            while i < n and data[i] == 0xFF:  # fill bytes
                i += 1
            if i >= n:
                self._pending = b"\xff" if n and data[n - 1] == 0xFF else b""
                return
            marker = data[i]
            if marker in _JPEG_STANDALONE:
                i += 1
                continue
            if marker in (0xD9, 0xDA):  # end of image, or a scan, before any frame header
                self.failed = True
                return
            if n - i < (8 if marker in _JPEG_SOF else 3):
                self._pending = b"\xff" + bytes(data[i:])
                return
            length = data[i + 1] << 8 | data[i + 2]
            if marker in _JPEG_SOF:
                height, width = data[i + 4] << 8 | data[i + 5], data[i + 6] << 8 | data[i + 7]
                if width and height:
                    self.size = (width, height)
                else:
                    self.failed = True
                return
            if length < 2:
                self.failed = True
                return
            i += 1 + length
            if i > n:
                self._skip = i - n
                return


class ImageMeter:
    """Hashes, counts and reads dimensions from chunks as they stream past."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._probe = 0
        self._jpeg = JpegFrameScanner()
        self._tail = b""
        self._first = b""  # the magic bytes, kept after the head is dropped
        self.header: tuple[int, int, str] | None = None

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ImageRejected(f"larger than MAX_IMAGE_BYTES ({self.max_bytes} bytes)")
        self._hash.update(chunk)
        if len(self._first) < 16:
            self._first += chunk[: 16 - len(self._first)]
        self._tail = bytes(chunk[-TAIL_BYTES:]) if len(chunk) >= TAIL_BYTES else (self._tail + chunk)[-TAIL_BYTES:]
        if self.header is None:
            self._jpeg.feed(chunk)
        if self.header is None and self._jpeg.is_jpeg and not self._jpeg.failed:
            # Decided at the same probe points, then as soon as found; only a small head is kept,
            # for Pillow, should the scanner give up.
            self._head += chunk[: HEADER_PROBES[0] - len(self._head)]
            crossed = False
            while self._probe < len(HEADER_PROBES) and self.size >= HEADER_PROBES[self._probe]:
                self._probe, crossed = self._probe + 1, True
            if self._jpeg.size and (crossed or self._probe == len(HEADER_PROBES)):
                self._jpeg_header()
        elif self.header is None and self._probe < len(HEADER_PROBES):
            # Only while the head is still the file's exact prefix: after the JPEG scanner gave up
            # on a capped head, later chunks would make non-contiguous bytes for Pillow.
            if len(self._head) == self.size - len(chunk):
                self._head += chunk[: HEADER_PROBES[-1] - len(self._head)]
            while self._probe < len(HEADER_PROBES) and len(self._head) >= HEADER_PROBES[self._probe]:
                self._probe += 1
                self._try_header()

    def _try_header(self) -> None:
        self.header = read_header(bytes(self._head))
        if self.header:
            self._head = bytearray()  # no longer needed; keep memory flat

    def _jpeg_header(self) -> None:
        width, height = self._jpeg.size
        if width * height > MAX_PIXELS:  # the same rule Pillow applies in read_header
            raise ImageRejected(f"declares more than {MAX_PIXELS} pixels (decompression bomb)")
        self.header, self._head = (width, height, "JPEG"), bytearray()

    def finish(self, whole_file=None) -> ImageFacts:
        """The facts, once every chunk was fed. ``whole_file`` (a seekable copy of the bytes) is
        read for a TIFF whose directory lies past the head, as libtiff writes compressed ones
        (Pillow seeks to it and decodes no pixels), and to tell a cut-short GIF, WebP or TIFF."""
        if self.header is None and self._jpeg.size:
            self._jpeg_header()
        if self.header is None and self._head:
            self._try_header()
        if self.header is None and whole_file is not None and bytes(self._head[:4]) in _TIFF_MAGIC:
            whole_file.seek(0)
            self.header = read_header(whole_file)
        if whole_file is not None and (cut := truncation(self._first, whole_file, self.size)):
            raise ImageRejected(cut)
        if self.header is None:
            raise ImageRejected("not a decodable image")
        width, height, fmt = self.header
        if fmt not in CONTENT_TYPES:
            raise ImageRejected(f"unsupported image format {fmt or 'unknown'}")
        if width * height > MAX_PIXELS:
            raise ImageRejected(f"{width}x{height} pixels exceeds the {MAX_PIXELS} pixel limit")
        end = END_MARKERS.get(fmt)
        if end and end not in self._tail:
            raise ImageRejected(f"{fmt} data ends without its end marker (cut short)")
        return ImageFacts(self.size, self._hash.hexdigest(), width, height, fmt)


def source_digest(url: str) -> str:
    """Where an object came from, as stored with it: ASCII-safe for S3 metadata, and the same for
    the same URL, so a later run can tell a stored image from another source's under its key."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
