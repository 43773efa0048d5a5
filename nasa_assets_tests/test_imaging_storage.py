"""Streaming image measurement with generated images, and the local object store."""

import hashlib
import io
import os
import random
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from nasa_assets.dataset import tables
from nasa_assets.dataset.fetch import download_to_store
from nasa_assets.dataset.imaging import ImageFacts, ImageMeter, ImageRejected, open_image
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.parsing import parse_item
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage.local import INCOMING, LocalStore
from nasa_assets_tests.helpers import answering, serving


MB = 1 << 20


def measure_stream(chunks, max_bytes: int) -> ImageFacts:
    """What the downloader learns of a body arriving in `chunks`, spooled as it does."""
    meter, spool = ImageMeter(max_bytes), io.BytesIO()
    for chunk in chunks:
        meter.feed(chunk)
        spool.write(chunk)
    return meter.finish(spool)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random pixels compress badly, which makes a JPEG as large as a test needs."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    return Image.frombytes("RGB", (width, height), pixels)


def with_comments_before_sof(jpeg: bytes, total: int) -> bytes:
    """Insert COM segments right after SOI. One segment holds at most 65533 bytes of payload."""
    assert jpeg[:2] == b"\xff\xd8"
    segments, left = [], total
    while left > 0:
        size = min(left, 65000)
        segments.append(b"\xff\xfe" + struct.pack(">H", size + 2) + b"c" * size)
        left -= size
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks(data: bytes, size: int = 64 * 1024):
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- open_image / ImageMeter / measure_stream -----------------------------------------------


def test_jpeg_facts():
    data = encode(noise(64, 48), "JPEG", quality=90)
    facts = measure_stream(chunks(data, 1000), max_bytes=MB)
    assert facts == ImageFacts(len(data), hashlib.sha256(data).hexdigest(), 64, 48, "JPEG")


def test_png_facts():
    data = encode(Image.new("RGBA", (31, 17), (10, 20, 30, 40)), "PNG")
    facts = measure_stream([data], max_bytes=MB)
    assert facts == ImageFacts(len(data), hashlib.sha256(data).hexdigest(), 31, 17, "PNG")


def test_open_image_reads_the_header_only():
    for image, fmt in ((Image.new("L", (5, 7)), "PNG"), (Image.new("RGB", (9, 3)), "GIF")):
        with open_image(encode(image, fmt)) as opened:
            assert (opened.size, opened.format) == (image.size, fmt)
    for data in (b"", b"\xff\xd8\xff"):  # nothing, a JPEG start
        with pytest.raises(UnidentifiedImageError):
            open_image(data)


def test_jpeg_with_200kb_of_comments_before_sof_is_measured():
    padded = with_comments_before_sof(encode(noise(700, 500), "JPEG", quality=95), 200 * 1024)
    facts = measure_stream(chunks(padded), max_bytes=16 * MB)
    assert facts == ImageFacts(len(padded), hashlib.sha256(padded).hexdigest(), 700, 500, "JPEG")


def test_jpeg_with_comments_before_sof_in_every_chunking_is_measured():
    padded = with_comments_before_sof(encode(noise(20, 10), "JPEG"), 200 * 1024)
    for size in (1, 7, 4096, len(padded)):
        facts = measure_stream(chunks(padded[:5000], size) + chunks(padded[5000:], 65536), max_bytes=MB)
        assert (facts.width, facts.height, facts.bytes) == (20, 10, len(padded))


@pytest.mark.parametrize(("mode", "options"), [
    ("RGB", {}), ("RGB", {"progressive": True}), ("L", {}), ("CMYK", {}),
    ("RGB", {"exif": b"Exif\x00\x00" + b"e" * 60000}),
    # A thumbnail inside the EXIF segment has a frame header of its own, of another size.
    ("RGB", {"exif": b"Exif\x00\x00" + encode(noise(7, 5), "JPEG")}),
])
def test_jpeg_size_read_without_pillow_matches_pillow(mode, options):
    data = encode(noise(33, 21).convert(mode), "JPEG", **options)
    facts = measure_stream([data], max_bytes=MB)
    with Image.open(io.BytesIO(data)) as image:
        assert (facts.width, facts.height, facts.format) == (*image.size, "JPEG")


def test_a_12_bit_jpeg_is_left_to_pillow_which_refuses_it():
    data = bytearray(encode(noise(33, 21), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # the frame's sample precision
    with pytest.raises(ImageRejected) as caught:
        measure_stream([bytes(data)], max_bytes=MB)
    assert caught.value.reason == "not a decodable image"


def test_a_jpeg_mostly_made_of_segments_before_its_frame_is_measured_without_holding_them():
    padded = with_comments_before_sof(encode(noise(40, 30), "JPEG"), 20 * MB)
    meter, spool = ImageMeter(64 * MB), io.BytesIO(padded)
    meter.feed(padded)
    tracemalloc.start()
    try:
        facts = meter.finish(spool)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (facts.width, facts.height, facts.bytes) == (40, 30, len(padded))
    assert peak < MB  # Pillow's opener kept all 20 MB of segments


def test_html_page_is_rejected():
    page = b"<!DOCTYPE html><html><head><title>Access denied</title></head><body>No</body></html>"
    with pytest.raises(ImageRejected) as caught:
        measure_stream([page], max_bytes=MB)
    assert caught.value.reason == "not a decodable image"


def test_empty_stream_is_rejected():
    with pytest.raises(ImageRejected, match="not a decodable image"):
        measure_stream([], max_bytes=MB)


def test_png_declaring_50000x50000_is_a_decompression_bomb():
    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")
    with pytest.raises(ImageRejected) as caught:
        measure_stream([png], max_bytes=MB)
    assert caught.value.reason == "declares more than 200000000 pixels (decompression bomb)"


def test_stream_larger_than_max_bytes_is_rejected_while_streaming():
    data = encode(noise(64, 64), "PNG")
    limit = len(data) - 1
    with pytest.raises(ImageRejected) as caught:
        measure_stream(chunks(data, 100), max_bytes=limit)
    assert caught.value.reason == f"larger than MAX_IMAGE_BYTES ({limit} bytes)"
    # exactly at the limit is still fine
    assert measure_stream(chunks(data, 100), max_bytes=len(data)).bytes == len(data)


def test_oversized_stream_stops_early():
    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield b"\0" * 1000

    with pytest.raises(ImageRejected, match="larger than MAX_IMAGE_BYTES"):
        measure_stream(endless(), max_bytes=10_500)
    assert len(consumed) == 11


def test_unsupported_format_is_rejected():
    with pytest.raises(ImageRejected, match="unsupported image format BMP"):
        measure_stream([encode(Image.new("RGB", (4, 4)), "BMP")], max_bytes=MB)


def test_facts_metadata_round_trip():
    facts = ImageFacts(123, "ab" * 32, 640, 628, "JPEG")
    meta = facts.as_metadata()
    assert meta == {"bytes": "123", "sha256": "ab" * 32, "width": "640", "height": "628",
                    "format": "JPEG"}
    assert ImageFacts.from_metadata(meta) == facts
    assert ImageFacts.from_metadata({}) is None
    assert ImageFacts.from_metadata(meta | {"width": "wide"}) is None


# --- LocalStore ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "root")


def incoming_files(store):
    folder = store.root / INCOMING
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_put_get_sizes_delete(store):
    store.put_bytes("images/PIA12235.jpg", b"jpeg-bytes")
    store.put_bytes("images/iss026-s-001.png", b"png")
    store.put_bytes("search_results/0001.parquet", b"p" * 10)
    assert store.get_bytes("images/PIA12235.jpg") == b"jpeg-bytes"
    assert store.size("images/PIA12235.jpg") == 10
    assert store.size("images/missing.jpg") is None
    assert store.exists("images/iss026-s-001.png")
    assert store.sizes("images") == {"images/PIA12235.jpg": 10, "images/iss026-s-001.png": 3}
    assert store.sizes("images/") == store.sizes("images")
    assert store.sizes("") == {"images/PIA12235.jpg": 10, "images/iss026-s-001.png": 3,
                               "search_results/0001.parquet": 10}
    assert store.sizes("nothing-here") == {}
    assert incoming_files(store) == []  # nothing left behind by successful writes
    store.delete("images/PIA12235.jpg")
    assert store.size("images/PIA12235.jpg") is None
    store.delete("images/PIA12235.jpg")  # absent is fine
    with pytest.raises(FileNotFoundError):
        store.get_bytes("images/PIA12235.jpg")


def test_put_overwrites_and_uri_is_absolute(store):
    store.put_bytes("images/a.jpg", b"old")
    store.put_bytes("images/a.jpg", b"newer")
    assert store.get_bytes("images/a.jpg") == b"newer"
    expected = (store.root / "images" / "a.jpg").as_uri()
    assert store.uri("images/a.jpg") == expected
    assert expected.startswith("file:///")


def test_put_file_reads_from_current_position(store):
    stream = io.BytesIO(b"skipTHIS")
    stream.seek(4)
    store.put_file("x.bin", stream)
    assert store.get_bytes("x.bin") == b"THIS"


def test_iter_chunks(store):
    store.put_bytes("images/big.bin", bytes(range(256)) * 10)
    assert b"".join(store.iter_chunks("images/big.bin", chunk_size=1000)) == bytes(range(256)) * 10
    sizes = [len(c) for c in store.iter_chunks("images/big.bin", chunk_size=1000)]
    assert sizes == [1000, 1000, 560]


@pytest.mark.parametrize(
    "key", ["../outside", "images/../../outside", "/etc/passwd", "", ".", "images/..", "a/../.."],
)
def test_keys_escaping_the_root_raise(store, key):
    with pytest.raises(ValueError, match="escapes the storage root"):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.size(key)
    with pytest.raises(ValueError):
        store.delete(key)
    with pytest.raises(ValueError):
        store.uri(key)
    with pytest.raises(ValueError):
        store.open(key)
    assert not (store.root.parent / "outside").exists()


class BrokenSource(io.RawIOBase):
    """Gives some bytes, then fails the way a reset connection does."""

    def __init__(self):
        self.calls = 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.calls += 1
        if self.calls == 1:
            return b"partial" * 1000
        raise ConnectionResetError("connection reset by peer")


def test_failed_put_leaves_no_final_and_no_temp_file(store):
    with pytest.raises(ConnectionResetError):
        store.put_file("images/PIA12235.jpg", BrokenSource())
    assert store.size("images/PIA12235.jpg") is None
    assert incoming_files(store) == []
    assert store.sizes("") == {}


def test_failed_overwrite_keeps_the_previous_object(store):
    store.put_bytes("images/PIA12235.jpg", b"complete image")
    with pytest.raises(ConnectionResetError):
        store.put_file("images/PIA12235.jpg", BrokenSource())
    assert store.get_bytes("images/PIA12235.jpg") == b"complete image"
    assert incoming_files(store) == []


def test_remove_orphans_removes_dead_writers_only(store):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid no longer names a live process
    incoming = store.root / INCOMING
    incoming.mkdir(parents=True)
    dead = incoming / f"{child.pid}-deadbeef-tmp1"
    mine = incoming / f"{os.getpid()}-cafebabe-tmp2"
    dead.write_bytes(b"half a file")
    mine.write_bytes(b"being written")
    assert store.remove_orphans() == 1
    assert not dead.exists()
    assert mine.exists()
    assert store.remove_orphans() == 0


def test_remove_orphans_without_incoming_folder(store):
    assert store.remove_orphans() == 0


def test_parquet_round_trip_keeps_types(store):
    item = {"data": [{"nasa_id": "PIA12235", "title": "Nearside of the Moon",
                      "date_created": "2009-09-24T18:00:22Z", "keywords": ["Moon", "Chandrayaan-1"],
                      "media_type": "image"}]}
    df = tables.frame("search_results", [parse_item(item, 1, 1)])
    tables.write_table(store, "search_results/0001.parquet", "search_results", df)
    back = store.read_parquet("search_results/0001.parquet")
    assert list(back.columns) == list(df.columns)
    assert back.loc[0, "nasa_id"] == "PIA12235"
    assert back.loc[0, "date_created"] == datetime(2009, 9, 24, 18, 0, 22, tzinfo=UTC)
    assert list(back.loc[0, "keywords"]) == ["Moon", "Chandrayaan-1"]
    empty = tables.frame("search_results", [])
    tables.write_table(store, "search_results/0002.parquet", "search_results", empty)
    assert len(store.read_parquet("search_results/0002.parquet")) == 0


def test_a_jpeg_with_an_impossible_segment_length_is_not_decodable():
    comment = b"\xff\xfe" + struct.pack(">H", 65535) + b"c" * 65533
    data = b"\xff\xd8" + comment + comment + b"\xff\xe1\x00\x01" + b"x" * 200_000
    with pytest.raises(ImageRejected, match="not a decodable image"):
        measure_stream(chunks(data, 16 * 1024), max_bytes=MB)


def _tiff_with_directory_at_the_end() -> bytes:
    """An LZW TIFF as libtiff writes it: pixel strips first, the image directory (IFD) last."""
    out = io.BytesIO()
    pixels = random.Random(7).randbytes(1500 * 1500 * 3)  # incompressible: ~9 MB of strips
    Image.frombytes("RGB", (1500, 1500), pixels).save(out, "TIFF", compression="tiff_lzw")
    data = out.getvalue()
    ifd_offset = struct.unpack("<I" if data[:2] == b"II" else ">I", data[4:8])[0]
    assert ifd_offset > 4 * MB  # far from the head
    return data


def test_a_tiff_whose_directory_is_past_the_head_is_measured_from_the_whole_file():
    data = _tiff_with_directory_at_the_end()
    facts = measure_stream(chunks(data, 256 * 1024), 1 << 30)
    assert (facts.width, facts.height, facts.format) == (1500, 1500, "TIFF")
    assert facts.bytes == len(data) and facts.sha256 == hashlib.sha256(data).hexdigest()


def test_a_large_tiff_original_is_downloaded_and_measured(tmp_path):
    data = _tiff_with_directory_at_the_end()

    with serving(answering(data, "image/tiff")) as host:
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10))
        facts = download_to_store(client, LocalStore(tmp_path), f"http://{host}/x~orig.tif", "images/x.tif", 1 << 30)
        client.close()
    assert (facts.width, facts.height, facts.format) == (1500, 1500, "TIFF")
    assert (tmp_path / "images/x.tif").read_bytes() == data


def test_an_image_cut_short_at_the_source_is_rejected():
    jpeg = encode(noise(400, 300), "JPEG", quality=95)
    png = encode(noise(200, 100), "PNG")
    for data in (jpeg[: len(jpeg) * 2 // 3], png[:-12]):  # header intact, the end missing
        with pytest.raises(ImageRejected, match="data ends without its end marker"):
            measure_stream(chunks(data, 4096), max_bytes=MB)
    # Data appended after the end marker (some cameras do) is not a cut.
    padded = jpeg + b"\x00" * 10_000
    assert measure_stream(chunks(padded, 4096), max_bytes=MB).bytes == len(padded)


def test_a_body_without_content_length_that_stops_early_is_not_stored(tmp_path):
    """No Content-Length, connection closed after two thirds: HTTP cannot tell, the format can."""
    jpeg = encode(noise(400, 300), "JPEG", quality=95)

    with serving(answering(jpeg[: len(jpeg) * 2 // 3], "image/jpeg", with_length=False)) as host:
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10))
        with pytest.raises(ImageRejected, match="JPEG data ends without its end marker"):
            download_to_store(client, LocalStore(tmp_path), f"http://{host}/x~large.jpg", "images/x.jpg", MB)
        client.close()
    assert not (tmp_path / "images").exists()


def _animated_gif() -> bytes:
    """Two frames, a comment and a loop extension: every kind of GIF block the walk passes over."""
    frames = [noise(120, 80, seed).convert("P") for seed in (1, 2)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"moon")
    return out.getvalue()


TRUNCATABLE = {
    "GIF": lambda: encode(noise(200, 150), "GIF"),
    "animated GIF": _animated_gif,
    "WEBP": lambda: encode(noise(200, 150), "WEBP", quality=90),
    "TIFF": lambda: encode(noise(200, 150), "TIFF"),
    "TIFF, directory last": lambda: encode(noise(200, 150), "TIFF", compression="tiff_lzw"),
}


@pytest.mark.parametrize("kind", TRUNCATABLE)
@pytest.mark.parametrize("keep", [1 / 3, 2 / 3, -1, -20])
def test_a_gif_webp_or_tiff_cut_short_is_truncated_not_stored(tmp_path, kind, keep):
    """No Content-Length and a closed connection: only the format can tell the file is cut."""
    data = TRUNCATABLE[kind]()
    cut = data[: int(len(data) * keep)] if keep > 0 else data[:keep]
    fmt = kind.split(",")[0].split()[-1]
    with serving(answering(cut, "image/x", with_length=False)) as host:
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10))
        with pytest.raises(ImageRejected, match=f"^{fmt} data is truncated"):
            download_to_store(client, LocalStore(tmp_path), f"http://{host}/x~orig", "images/x", MB)
        client.close()
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize("kind", TRUNCATABLE)
def test_a_complete_gif_webp_or_tiff_is_stored(tmp_path, kind):
    data = TRUNCATABLE[kind]()
    padded = data + b"\x00" * 100 if "GIF" in kind else data  # bytes after the trailer are no cut
    with serving(answering(padded, "image/x", with_length=False)) as host:
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(host),
                            rate_limiter=RateLimiter(10))
        facts = download_to_store(client, LocalStore(tmp_path), f"http://{host}/x~orig", "images/x", MB)
        client.close()
    assert facts.bytes == len(padded) and (tmp_path / "images/x").read_bytes() == padded
    assert facts.format == kind.split(",")[0].split()[-1]


@pytest.mark.parametrize("options", [{"quality": 80}, {"lossless": True},
                                     {"quality": 80, "exif": b"Exif\x00\x00MM\x00*"}])
def test_a_webp_is_measured_from_its_header(options):
    # Lossy (VP8), lossless (VP8L) and extended (VP8X) headers all give the canvas size.
    data = encode(noise(203, 151), "WEBP", **options)
    facts = measure_stream(chunks(data, 1000), max_bytes=MB)
    assert facts == ImageFacts(len(data), hashlib.sha256(data).hexdigest(), 203, 151, "WEBP")


def test_a_webp_declaring_20000x20000_is_a_decompression_bomb():
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (19_999).to_bytes(3, "little") * 2
    webp = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    with pytest.raises(ImageRejected) as caught:
        measure_stream([webp], max_bytes=MB)
    assert caught.value.reason == "declares more than 200000000 pixels (decompression bomb)"


# --- size cap while streaming, memory flat ----------------------------------------------------


class EndlessJpeg:
    """Serves a JPEG that never ends, without Content-Length, and counts the bytes it sent."""

    SEGMENT = b"\xff\xfe" + (65533 + 2).to_bytes(2, "big") + b"p" * 65533  # a JPEG comment

    def __init__(self):
        server_self = self
        self.sent = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                try:
                    self.wfile.write(b"\xff\xd8")
                    while server_self.sent < 2048 * MB:
                        self.wfile.write(EndlessJpeg.SEGMENT)
                        server_self.sent += len(EndlessJpeg.SEGMENT)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.integration  # a real socket and a 256 MB stream
def test_oversized_stream_is_stopped_while_streaming_with_flat_memory(tmp_path):
    endless = EndlessJpeg()
    peak, baseline, done = [0], rss_bytes(), threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.02)  # a held 256 MB body would stay in memory far longer than this

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        client = NasaClient(base_url="http://127.0.0.1:9", allowed_hosts=parse_allowed_hosts(endless.host),
                            rate_limiter=RateLimiter(10))
        with pytest.raises(ImageRejected, match=r"larger than MAX_IMAGE_BYTES \(268435456 bytes\)"):
            download_to_store(client, LocalStore(tmp_path), f"http://{endless.host}/x~large.jpg",
                              "images/x.jpg", max_bytes=256 * MB)
    finally:
        done.set()
        sampler.join()
        endless.close()
    assert 256 * MB < endless.sent < 300 * MB  # stopped right after the cap, not at the end
    # Streamed through a spool file, never held in memory: a held body alone would add 256 MB; the
    # margin is for whatever the rest of the process (moto, the double) allocates meanwhile.
    assert peak[0] - baseline < 160 * MB
    assert not (tmp_path / "images").exists()
