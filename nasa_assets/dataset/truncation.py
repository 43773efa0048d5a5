"""Whether a spooled image file is complete: a cut-short download must not be stored as an image.

Reads the first bytes, the last 64 KB and (GIF, TIFF) block headers, never pixels. imaging.py
calls it once the body has been spooled and Pillow has read its header.
"""

from PIL import ImageFile

# A complete JPEG ends with its EOI marker, a PNG with its IEND chunk; looked for in the last bytes,
# which tolerates data appended after them (some cameras do) but not a file cut short at the source.
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
TAIL_BYTES = 64 * 1024

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def truncation(image: ImageFile.ImageFile | None, spool, size: int, fmt: str | None = None) -> str | None:
    """Why the spooled file of `size` bytes is cut short, or None. Reads its first bytes, its last
    64 KB and (GIF) block headers, never pixels; `image` is its lazily opened header, if any, and
    `fmt` its format when it was read without Pillow."""
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
    fmt = fmt or (image.format if image is not None else None)
    if end := END_MARKERS.get(fmt or ""):
        spool.seek(max(0, size - TAIL_BYTES))
        if end not in spool.read(TAIL_BYTES):
            return f"{fmt} data ends without its end marker (cut short)"
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
