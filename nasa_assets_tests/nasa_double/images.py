"""Synthetic files: deterministic JPEG renditions padded to any size, a slow body, a PNG bomb."""

from __future__ import annotations

import functools
import hashlib
import io
import random
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator

from PIL import Image, ImageDraw

from nasa_assets_tests.nasa_double.corpus import RENDITION_DIMS

CHUNK_SIZE = 64 * 1024
HUGE_BYTES = 300 * 1024 * 1024
BOMB_DIMS = (50_000, 50_000)

# A JPEG COM segment is FF FE + 2-byte length that counts itself, so at most 65533 payload bytes.
_COM_MAX_PAYLOAD = 65533
_COM_SEGMENT = 4 + _COM_MAX_PAYLOAD
# Padding payload avoids 0xFF so even a naive marker scanner cannot mistake it for a marker.
_PAD_PAYLOAD = (b"NASA-DOUBLE-PADDING " * (_COM_MAX_PAYLOAD // 20 + 1))[:_COM_MAX_PAYLOAD]
_FULL_COM = b"\xff\xfe" + struct.pack(">H", _COM_MAX_PAYLOAD + 2) + _PAD_PAYLOAD


@functools.lru_cache(maxsize=16384)
def _jpeg(seed: int, nasa_id: str, rendition: str) -> bytes:
    """Small deterministic JPEG; the same scene at every rendition, a different scene per id."""
    width, height = RENDITION_DIMS[rendition]
    digest = hashlib.sha256(f"{seed}\0{nasa_id}".encode()).digest()
    rng = random.Random(digest)
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.random(), rng.random()
        x1, y1 = x0 + rng.random() / 2, y0 + rng.random() / 2
        box = [int(x0 * width), int(y0 * height), int(x1 * width), int(y1 * height)]
        fill = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _jpeg_split(jpeg: bytes) -> int:
    """Offset after SOI and the JFIF APP0 segment: padding goes there so JFIF stays first."""
    if jpeg[2:4] == b"\xff\xe0":
        return 4 + struct.unpack(">H", jpeg[4:6])[0]
    return 2


def _pad_payloads(pad: int) -> tuple[int, list[int]]:
    """Split ``pad`` bytes into (number of full COM segments, payload sizes of the others)."""
    full, rest = divmod(pad, _COM_SEGMENT)
    if rest >= 4:
        return full, [rest - 4]
    if rest and full:
        # 1-3 leftover bytes cannot form a segment; split one full segment in two instead.
        full -= 1
        total = _COM_SEGMENT + rest
        first = total // 2
        return full, [first - 4, total - first - 4]
    return full, []


def _padded_size(base: int, target: int | None) -> int:
    if not target or target <= base:
        return base
    full, tails = _pad_payloads(target - base)
    return base + full * _COM_SEGMENT + sum(4 + t for t in tails)


def _padded_chunks(jpeg: bytes, target: int | None) -> Iterator[bytes]:
    """The JPEG with COM padding up to ``target`` bytes, generated lazily in ~64 KiB chunks."""
    if not target or target <= len(jpeg):
        yield jpeg
        return
    split = _jpeg_split(jpeg)
    yield jpeg[:split]
    full, tails = _pad_payloads(target - len(jpeg))
    for _ in range(full):
        yield _FULL_COM
    for size in tails:
        yield b"\xff\xfe" + struct.pack(">H", size + 2) + _PAD_PAYLOAD[:size]
    yield jpeg[split:]


def _trickled(chunks: Iterable[bytes], per_second: float, stop: threading.Event) -> Iterator[bytes]:
    """The same bytes, at most ``per_second`` of them a second (one byte at a time when slow)."""
    step = max(1, int(per_second))
    for chunk in chunks:
        for start in range(0, len(chunk), step):
            if stop.wait(step / per_second):
                return
            yield chunk[start : start + step]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=1)
def bomb_png() -> bytes:
    """A few-KB PNG whose IHDR declares 50000x50000 grey pixels (a decompression bomb)."""
    width, height = BOMB_DIMS
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # Only the first rows are present: enough to look real, too little to actually inflate.
    rows = (b"\x00" + bytes(width)) * 16
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )
