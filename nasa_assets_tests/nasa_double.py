"""HTTP test double of images-api.nasa.gov (search) and images-assets.nasa.gov (files).

One ``ThreadingHTTPServer`` on 127.0.0.1 serves both hosts. The corpus starts with the real
recorded image items from ``data/`` and is padded with deterministic synthetic items. Faults can be
scripted per request kind, and a small control surface under ``/__double__/`` lets other processes
drive a double they did not start.

Run standalone with ``python -m nasa_assets_tests.nasa_double --port 0``.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime as dt
import functools
import hashlib
import io
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from PIL import Image, ImageDraw

DATA_DIR = Path(__file__).resolve().parent / "data"

RENDITIONS = ("orig", "large", "medium", "small", "thumb")
RENDITION_DIMS = {
    "orig": (320, 240),
    "large": (160, 120),
    "medium": (96, 72),
    "small": (64, 48),
    "thumb": (32, 24),
}
# Order and rel values of the v1.1 rendition links, as in search-nasa_id-iss026-s-001-v1.1.json.
_V11_LINK_ORDER = (
    ("medium", "alternate"),
    ("small", "alternate"),
    ("thumb", "preview"),
    ("large", "alternate"),
    ("orig", "canonical"),
)

RESULT_CAP = 10_000
CAP_REASON = "Maximum number of search results have been displayed. Please refine your search."
REAL_API_ORIGIN = "http://images-api.nasa.gov"
_REAL_ASSET_ORIGINS = ("https://images-assets.nasa.gov", "http://images-assets.nasa.gov")

CHUNK_SIZE = 64 * 1024
HUGE_BYTES = 300 * 1024 * 1024
BOMB_DIMS = (50_000, 50_000)

_JSON_TYPE = "application/json; charset=UTF-8"
_KINDS = ("search", "collection", "image", "metadata", "other")
_CONTROL_PREFIX = "/__double__/"
_SIMPLE_STATUS_FAULTS = {"429": 429, "500": 500, "502": 502, "503": 503}

# A JPEG COM segment is FF FE + 2-byte length that counts itself, so at most 65533 payload bytes.
_COM_MAX_PAYLOAD = 65533
_COM_SEGMENT = 4 + _COM_MAX_PAYLOAD
# Padding payload avoids 0xFF so even a naive marker scanner cannot mistake it for a marker.
_PAD_PAYLOAD = (b"NASA-DOUBLE-PADDING " * (_COM_MAX_PAYLOAD // 20 + 1))[:_COM_MAX_PAYLOAD]
_FULL_COM = b"\xff\xfe" + struct.pack(">H", _COM_MAX_PAYLOAD + 2) + _PAD_PAYLOAD


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


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


_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Temporarily unavailable</h1><p>Please try again later.</p></body></html>\n"
)


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _real_items() -> tuple[dict, ...]:
    """Recorded image items, de-duplicated by nasa_id, in the documented order."""
    sources = (
        "search-apollo11-image-page1-first20.json",
        "search-moon-page1.json",
        "search-nasa_id-iss026-s-001-v1.1.json",
        "search-apollo-pagesize1.json",
        "search-last-page-no-next-link.json",
    )
    seen: set[str] = set()
    items = []
    for name in sources:
        for item in _load(name)["collection"]["items"]:
            data = item["data"][0]
            if data.get("media_type") != "image" or data["nasa_id"] in seen:
                continue
            seen.add(data["nasa_id"])
            items.append(item)
    return tuple(items)


_SUBJECTS = (
    "Full Moon rises over the Capitol",
    "Lunar eclipse seen from Kennedy Space Center",
    "Crescent Moon and Venus",
    "Supermoon over the Washington Monument",
    "Lunar Reconnaissance Orbiter view of the south pole",
    "Earthrise photographed from lunar orbit",
    "Apollo landing site revisited",
    "Artemis I Orion spacecraft flies past the Moon",
    "Moon setting behind the Vehicle Assembly Building",
    "Harvest Moon over Johnson Space Center",
)
_CENTERS = ("HQ", "JSC", "KSC", "JPL", "MSFC", "GSFC", "ARC")
_PLACES = ("National Mall", "NASA Headquarters", "Kennedy Space Center", "Houston", "Pasadena")
_PHOTOGRAPHERS = ("NASA/Bill Ingalls", "NASA/Joel Kowsky", "NASA/Aubrey Gemignani", "NASA/Kim Shiflett")
_KEYWORDS = (
    "Moon", "Lunar", "Artemis", "Apollo", "Eclipse", "Supermoon", "LRO", "Earth", "Orion",
    "Washington, DC", "Full Moon", "Night Sky",
)
_ALBUMS = ("Moon_Gallery", "Artemis_I", "Apollo_50th", "Lunar_Science")


def _synthetic_data(nasa_id: str, index: int, seed: int, salt: str = "") -> dict:
    """Item ``data[0]`` for a synthetic item, cloned from one of the real shapes."""
    rng = random.Random(f"{seed}:{index}:{salt}")
    shape = rng.randrange(4)
    subject = rng.choice(_SUBJECTS)
    title = f"{subject} ({index})"
    if rng.random() < 0.15:
        # The real API cuts titles at 64 characters.
        title = (title + " as seen by the public affairs photography team on site")[:64]
    when = dt.datetime(1960, 1, 1) + dt.timedelta(days=rng.randrange(65 * 365))
    if shape == 1:
        when += dt.timedelta(seconds=rng.randrange(86400))
    date_created = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    keywords = sorted(rng.sample(_KEYWORDS, rng.randint(2, 5)))
    description = f"{subject}. Synthetic test image number {index} of the Moon search."

    if shape == 0:  # HQ photo-desk shape
        photographer = rng.choice(_PHOTOGRAPHERS)
        return {
            "album": [rng.choice(_ALBUMS)],
            "center": "HQ",
            "title": title,
            "photographer": photographer,
            "location": rng.choice(_PLACES),
            "nasa_id": nasa_id,
            "date_created": date_created,
            "keywords": keywords,
            "media_type": "image",
            "description": f"{description} Photo Credit: ({photographer})",
        }
    if shape == 1:  # JPL PIA shape
        return {
            "description_508": title,
            "nasa_id": nasa_id,
            "date_created": date_created,
            "secondary_creator": "NASA/JPL-Caltech",
            "media_type": "image",
            "description": description,
            "center": "JPL",
            "keywords": keywords,
            "title": title,
        }
    if shape == 2:  # JSC shape: stub description, sometimes no keywords at all
        data = {
            "center": "JSC",
            "date_created": date_created,
            "description": f"{nasa_id.upper()} ({when:%B %Y}) --- ",
            "media_type": "image",
            "nasa_id": nasa_id,
            "title": title,
        }
        if rng.random() < 0.5:
            data["keywords"] = keywords
        return data
    # Keywords as one comma-joined string, like the recorded Apollo 8 item.
    return {
        "center": rng.choice(_CENTERS),
        "title": title,
        "keywords": [", ".join(keywords)],
        "nasa_id": nasa_id,
        "date_created": date_created,
        "media_type": "image",
        "description": description,
    }


def _rewrite_asset_url(url: str, base_url: str) -> str:
    for origin in _REAL_ASSET_ORIGINS:
        if url.startswith(origin):
            return base_url + url[len(origin):]
    return url


def _rewrite_raw(item: Any, base_url: str) -> Any:
    """A raw item with its asset hrefs (item and links) pointed at the double, shape untouched."""
    if isinstance(item, dict):
        if isinstance(item.get("href"), str):
            item["href"] = _rewrite_asset_url(item["href"], base_url)
        for link in item.get("links") if isinstance(item.get("links"), list) else []:
            if isinstance(link, dict) and isinstance(link.get("href"), str):
                link["href"] = _rewrite_asset_url(link["href"], base_url)
    return item


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs when a benchmark opens dozens of connections at once.
    request_queue_size = 128
    double: NasaDouble

    def handle_error(self, request, client_address) -> None:
        # Clients aborting downloads (huge, truncate, timeouts) is expected, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NasaDouble/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.double._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.double._track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        content_type: str | None,
        chunks: Iterable[bytes],
        length: int,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
        trickle: float | None = None,
    ) -> None:
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            limit = length // 2 if truncate else length
            sent = 0
            if trickle:
                chunks = _trickled(chunks, trickle, self.server.double._stopping)
            for chunk in chunks:
                if sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                if chunk:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                if sent >= limit:
                    break
            if truncate:
                self.close_connection = True
        except OSError:
            self.close_connection = True

    def _send_bytes(self, status: int, content_type: str | None, body: bytes, **kw: Any) -> None:
        chunks = (body[i : i + CHUNK_SIZE] for i in range(0, len(body), CHUNK_SIZE))
        self._send(status, content_type, chunks, len(body), **kw)

    def _send_json(self, status: int, obj: Any, **kw: Any) -> None:
        self._send_bytes(status, _JSON_TYPE, json.dumps(obj).encode("utf-8"), **kw)

    def _reset(self) -> None:
        """Drop the connection without a response, with an RST where the OS allows it."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # rfile holds a reference to the socket; the fd only closes once both are closed.
        self.rfile.close()
        self.connection.close()

    # -- routing ----------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        double = self.server.double
        split = urlsplit(self.path)
        body = self._read_body() if method == "POST" else b""
        if split.path.startswith(_CONTROL_PREFIX):
            self._control(method, split.path[len(_CONTROL_PREFIX):], body)
            return

        kind, nasa_id, target = double._classify(split.path)
        if method == "POST":
            kind, target = "other", None
        double._record(kind, self.path)
        fault = double._take_fault(kind, nasa_id)
        if double.delay > 0:
            double._delay_one()

        truncate, trickle = False, None
        if fault is not None:
            if fault.startswith("trickle:"):  # honest Content-Length, body at N bytes a second
                trickle = float(fault[len("trickle:"):])
            elif fault == "empty" and kind == "search":  # 200, total_hits kept, no items
                status, payload = double._search_response(split.query, empty=True)
                self._send_json(status, payload)
                return
            elif fault.startswith("slow:"):
                time.sleep(float(fault[len("slow:"):]))
            elif fault == "hold":  # answer only once the test calls release(), 120 s at most
                double._released.wait(120)
            elif fault == "truncate":
                truncate = True
            else:
                self._apply_fault(fault, kind, nasa_id)
                return

        if kind == "search":
            status, payload = double._search_response(split.query)
            if isinstance(payload, bytes):
                self._send_bytes(status, _JSON_TYPE, payload, truncate=truncate)
            else:
                self._send_json(status, payload, truncate=truncate)
        elif target is None:
            self._send_json(404, self._not_found_reason(kind, nasa_id), truncate=truncate)
        elif kind == "collection":
            self._send_json(200, double._collection_json(nasa_id), truncate=truncate)
        elif kind == "metadata":
            self._send_json(200, double._metadata_json(nasa_id), truncate=truncate)
        else:  # image
            chunks, length = double._image_stream(nasa_id, target)
            self._send(200, "image/jpeg", chunks, length, truncate=truncate, trickle=trickle)

    @staticmethod
    def _not_found_reason(kind: str, nasa_id: str | None) -> dict:
        if kind != "other" and nasa_id is not None:
            return {"reason": f"No AssetDB records for nasaid={nasa_id}"}
        return {"reason": "Not found"}

    def _apply_fault(self, fault: str, kind: str, nasa_id: str | None) -> None:
        if fault in _SIMPLE_STATUS_FAULTS:
            status = _SIMPLE_STATUS_FAULTS[fault]
            headers = {"Retry-After": "1"} if status == 429 else None
            reason = "Too many requests" if status == 429 else f"Injected HTTP {status}"
            self._send_json(status, {"reason": reason}, headers=headers)
        elif fault == "reset":
            self._reset()
        elif fault == "html":
            # JSON endpoints get the proxy-error-page flavour; images get the lying content type.
            ctype = "image/jpeg" if kind == "image" else "text/html; charset=UTF-8"
            self._send_bytes(200, ctype, _HTML_PAGE)
        elif fault == "bomb":
            self._send_bytes(200, "image/png", bomb_png())
        elif fault == "huge":
            jpeg = _jpeg(self.server.double.seed, nasa_id or "huge", "thumb")
            self._send(200, "image/jpeg", _padded_chunks(jpeg, HUGE_BYTES), _padded_size(len(jpeg), HUGE_BYTES))
        elif fault.startswith("redirect:"):
            self._send_bytes(302, None, b"", headers={"Location": fault[len("redirect:"):]})
        else:
            self._send_json(500, {"reason": f"NasaDouble: unknown fault {fault!r}"})

    def _control(self, method: str, action: str, body: bytes) -> None:
        double = self.server.double
        try:
            args = json.loads(body) if body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
            if method == "GET" and action == "stats":
                pass
            elif method == "POST" and action == "config":
                double.configure(**args)
            elif method == "POST" and action == "reset_counts":
                double.reset_counts()
            elif method == "POST" and action == "insert_items":
                double.insert_items(int(args["count"]), int(args.get("at", 0)))
            elif method == "POST" and action == "replace_item":
                double.replace_item(int(args["position"]), str(args["nasa_id"]))
            else:
                self._send_json(404, {"reason": f"Unknown control endpoint {method} {action}"})
                return
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self._send_json(400, {"reason": f"{type(exc).__name__}: {exc}"})
            return
        self._send_json(200, double.stats())


class NasaDouble:
    """Test double of the NASA Image and Video Library search API and its file host."""

    def __init__(
        self,
        total_hits: int = 250,
        image_bytes: int | None = None,
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.image_bytes = image_bytes
        self.delay = delay
        self.counts: collections.Counter = collections.Counter()
        self.requests: list[tuple[str, str]] = []
        self.max_concurrent = 0  # the most requests inside their injected delay at once
        self._delayed_now = 0
        self._released = threading.Event()  # ends the "hold" fault
        self._stopping = threading.Event()  # ends "trickle" bodies when the server stops
        self._lock = threading.RLock()
        self._faults: dict = {}
        self.faults = {}
        self._records: list[dict] = []
        self._known: dict[str, dict] = {}
        self._inserted = 0
        self._collections: dict[str, list] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.base_url = ""
        self.host = ""
        self.total_hits = total_hits

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, port: int = 0) -> NasaDouble:
        """Bind 127.0.0.1:``port`` (0 = any free port) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", port), _Handler)
        server.double = self
        self._server = server
        self.host = f"127.0.0.1:{server.server_address[1]}"
        self.base_url = f"http://{self.host}"
        # A short poll interval keeps stop() (and so every test teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="nasa-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        self._released.set()
        self._stopping.set()
        if server is None:
            return
        server.shutdown()
        # Idle keep-alive connections would otherwise keep answering after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> NasaDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold_next(self, kind: str) -> None:
        """The next ``kind`` request waits, inside the double, until `release` is called."""
        self._released.clear()
        with self._lock:
            self._faults.setdefault(kind, []).insert(0, "hold")

    def release(self) -> None:
        self._released.set()

    def _delay_one(self) -> None:
        with self._lock:
            self._delayed_now += 1
            self.max_concurrent = max(self.max_concurrent, self._delayed_now)
        try:
            time.sleep(self.delay)
        finally:
            with self._lock:
                self._delayed_now -= 1

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- configuration ----------------------------------------------------------------------

    @property
    def total_hits(self) -> int:
        with self._lock:
            return len(self._records)

    @total_hits.setter
    def total_hits(self, value: int) -> None:
        value = int(value)
        if value < 0:
            raise ValueError("total_hits must be >= 0")
        with self._lock:
            if value <= len(self._records):
                del self._records[value:]
                return
            real = _real_items()
            taken = {r["nasa_id"] for r in self._records}
            for position in range(len(self._records), value):
                if position < len(real) and real[position]["data"][0]["nasa_id"] not in taken:
                    record = {
                        "nasa_id": real[position]["data"][0]["nasa_id"],
                        "real": real[position],
                    }
                else:
                    nasa_id = f"MOON-{position:05d}"
                    suffix = 1
                    while nasa_id in taken:
                        nasa_id = f"MOON-{position:05d}-{suffix}"
                        suffix += 1
                    record = self._synthetic(nasa_id, position)
                taken.add(record["nasa_id"])
                self._records.append(record)
                self._known[record["nasa_id"]] = record

    @property
    def faults(self) -> dict:
        """Scripted faults. ``{kind: [fault, ...]}`` queues one fault per request of that kind
        (None = answer normally); ``by_id: {nasa_id: fault}`` hits every image request of an item;
        ``always: {kind: fault}`` hits every request of a kind until faults are set again (an
        outage). Faults: "429", "500", "502", "503", "reset", "html", "bomb", "huge", "truncate",
        "hold", "slow:<s>", "redirect:<url>", "trickle:<bytes per s>" (honest Content-Length, slow
        body) and, for search, "empty" (200 with total_hits kept and no items)."""
        return self._faults

    @faults.setter
    def faults(self, value: dict) -> None:
        value = dict(value or {})
        normalized: dict = {kind: list(value.pop(kind, []) or []) for kind in ("search", "collection", "image")}
        normalized["by_id"] = dict(value.pop("by_id", {}) or {})
        # kind -> fault applied to every request of that kind until the faults are set again
        normalized["always"] = dict(value.pop("always", {}) or {})
        for kind, items in value.items():
            normalized[kind] = list(items or [])
        with self._lock:
            self._faults = normalized

    def configure(self, **settings: Any) -> None:
        """Apply any of total_hits, image_bytes, delay, faults (the HTTP config endpoint)."""
        unknown = set(settings) - {"total_hits", "image_bytes", "delay", "faults"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        if "total_hits" in settings:
            self.total_hits = int(settings["total_hits"])
        if "image_bytes" in settings:
            value = settings["image_bytes"]
            self.image_bytes = None if value is None else int(value)
        if "delay" in settings:
            self.delay = float(settings["delay"])
        if "faults" in settings:
            self.faults = settings["faults"]

    def reset_counts(self) -> None:
        """Clear ``counts`` and the ``requests`` log."""
        with self._lock:
            self.counts.clear()
            self.requests.clear()
            self.max_concurrent = 0

    def stats(self) -> dict:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "total_hits": len(self._records),
                "requests": len(self.requests),
                "image_bytes": self.image_bytes,
                "delay": self.delay,
            }

    # -- corpus -----------------------------------------------------------------------------

    def _synthetic(self, nasa_id: str, index: int, salt: str = "") -> dict:
        return {
            "nasa_id": nasa_id,
            "data": _synthetic_data(nasa_id, index, self.seed, salt),
            "format": "1.0" if index % 2 == 0 else "1.1",
        }

    def replace_item(self, position: int, new_nasa_id: str) -> None:
        """Put a new synthetic item with ``new_nasa_id`` at 0-based ``position``."""
        with self._lock:
            if not 0 <= position < len(self._records):
                raise IndexError(f"position {position} outside corpus of {len(self._records)}")
            record = self._synthetic(new_nasa_id, position, salt=f"replaced:{new_nasa_id}")
            self._records[position] = record
            self._known[new_nasa_id] = record

    def insert_items(self, count: int, at: int = 0) -> None:
        """Insert ``count`` new synthetic items (``MOON-NEW-nnnnn``) before position ``at``."""
        with self._lock:
            at = max(0, min(at, len(self._records)))
            new = []
            for _ in range(count):
                nasa_id = f"MOON-NEW-{self._inserted:05d}"
                new.append(self._synthetic(nasa_id, self._inserted, salt="inserted"))
                self._inserted += 1
            self._records[at:at] = new
            for record in new:
                self._known[record["nasa_id"]] = record

    def put_raw_items(self, position: int, items: list) -> None:
        """Serve ``items`` verbatim at 0-based ``position`` onwards, replacing the items there.

        For hostile-input tests: any JSON value is served as is, except that string hrefs on
        ``https://images-assets.nasa.gov`` point at this double (as for the recorded items). An
        item with a string ``data[0].nasa_id`` has its files served like any other item's.
        """
        with self._lock:
            if not 0 <= position <= len(self._records) - len(items):
                raise IndexError(f"positions {position}..{position + len(items) - 1} outside corpus")
            for offset, item in enumerate(items):
                try:
                    nasa_id = item["data"][0]["nasa_id"]
                except (TypeError, KeyError, IndexError):
                    nasa_id = None
                record = {"nasa_id": nasa_id, "raw": copy.deepcopy(item)}
                self._records[position + offset] = record
                if isinstance(nasa_id, str):
                    self._known[nasa_id] = record

    def set_collection(self, nasa_id: str, body: Any) -> None:
        """Serve ``body`` (any JSON value, verbatim) as ``nasa_id``'s collection.json."""
        with self._lock:
            self._collections[nasa_id] = copy.deepcopy(body)

    def corpus(self) -> list[dict]:
        """The current items, rendered exactly as the search endpoint returns them."""
        with self._lock:
            records = list(self._records)
        return [self._render(r) for r in records]

    def _render(self, record: dict) -> dict:
        base = self.base_url
        if "raw" in record:
            return _rewrite_raw(copy.deepcopy(record["raw"]), base)
        if "real" in record:
            item = copy.deepcopy(record["real"])
            item["href"] = _rewrite_asset_url(item["href"], base)
            for link in item.get("links", []):
                link["href"] = _rewrite_asset_url(link["href"], base)
            return item
        nasa_id = record["nasa_id"]
        folder = f"{base}/image/{nasa_id}"
        if record["format"] == "1.0":
            links = [{"href": f"{folder}/{nasa_id}~thumb.jpg", "rel": "preview", "render": "image"}]
        else:
            links = []
            for rendition, rel in _V11_LINK_ORDER:
                width, height = RENDITION_DIMS[rendition]
                links.append({
                    "href": f"{folder}/{nasa_id}~{rendition}.jpg",
                    "rel": rel,
                    "render": "image",
                    "width": width,
                    "size": self._image_size(nasa_id, rendition),
                    "height": height,
                })
        return {"href": f"{folder}/collection.json", "data": [copy.deepcopy(record["data"])], "links": links}

    # -- responses --------------------------------------------------------------------------

    def _record(self, kind: str, path: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.requests.append((kind, path))

    def _take_fault(self, kind: str, nasa_id: str | None) -> str | None:
        with self._lock:
            queue = self._faults.get(kind)
            if queue:
                fault = queue.pop(0)
                if fault is not None:
                    return str(fault)
            if kind == "image" and nasa_id is not None:
                fault = self._faults.get("by_id", {}).get(nasa_id)
                if fault is not None:
                    return str(fault)
            fault = self._faults.get("always", {}).get(kind)
            if fault is not None:
                return str(fault)
        return None

    def _classify(self, path: str) -> tuple[str, str | None, str | None]:
        """(kind, nasa_id, target) for a request path; target None means 404."""
        if path == "/search":
            return "search", None, "search"
        parts = path.split("/")
        if len(parts) != 4 or parts[0] or parts[1] != "image":
            return "other", None, None
        nasa_id, filename = unquote(parts[2]), unquote(parts[3])
        with self._lock:
            known = nasa_id in self._known
        if filename == "collection.json":
            return "collection", nasa_id, filename if known else None
        if filename == "metadata.json":
            return "metadata", nasa_id, filename if known else None
        if filename.endswith(".jpg") and "~" in filename:
            stem, _, rendition = filename[:-4].rpartition("~")
            ok = known and stem == nasa_id and rendition in RENDITION_DIMS
            return "image", nasa_id, rendition if ok else None
        return "other", None, None

    def _search_response(self, query: str, empty: bool = False) -> tuple[int, Any]:
        params = parse_qsl(query, keep_blank_values=True)
        if not [k for k, _ in params if k != "api_key"]:
            return 400, (DATA_DIR / "error-search-no-parameters.json").read_bytes()
        args = dict(params)
        try:
            page = int(args.get("page", 1))
            page_size = int(args.get("page_size", 100))
        except ValueError:
            return 400, {"reason": "page and page_size must be integers"}
        if page < 1 or page_size < 1:
            return 400, {"reason": "page and page_size must be >= 1"}
        if (page - 1) * page_size >= RESULT_CAP:
            return 400, {"reason": CAP_REASON}
        media_types = [m.strip() for m in args.get("media_type", "image").split(",")]
        with self._lock:
            records = list(self._records) if "image" in media_types else []
        start = (page - 1) * page_size
        collection: dict = {
            "version": "1.0",
            "href": f"{REAL_API_ORIGIN}/search?{query}",
            "items": [] if empty else [self._render(r) for r in records[start : start + page_size]],
            "metadata": {"total_hits": len(records)},
        }
        if start + page_size < len(records):
            next_params = [(k, v) for k, v in params if k != "page"] + [("page", str(page + 1))]
            collection["links"] = [
                {"rel": "next", "prompt": "Next", "href": f"{self.base_url}/search?{urlencode(next_params)}"}
            ]
        return 200, {"collection": collection}

    def _collection_json(self, nasa_id: str) -> Any:
        with self._lock:
            if nasa_id in self._collections:
                return copy.deepcopy(self._collections[nasa_id])
        folder = f"{self.base_url}/image/{nasa_id}"
        # The real file lists ~orig twice.
        urls = [f"{folder}/{nasa_id}~orig.jpg"]
        urls += [f"{folder}/{nasa_id}~{r}.jpg" for r in RENDITIONS]
        return urls + [f"{folder}/metadata.json"]

    def _metadata_json(self, nasa_id: str) -> dict:
        with self._lock:
            record = self._known[nasa_id]
        if "raw" in record:
            data = record["raw"]["data"][0]
        else:
            data = record["real"]["data"][0] if "real" in record else record["data"]
        width, height = RENDITION_DIMS["orig"]
        created = data.get("date_created", "")
        size = self._image_size(nasa_id, "orig")
        return {
            "AVAIL:Center": data.get("center", ""),
            "AVAIL:DateCreated": created,
            "AVAIL:Description": data.get("description", ""),
            "AVAIL:Keywords": list(data.get("keywords", [])),
            "AVAIL:MediaType": "image",
            "AVAIL:NASAID": nasa_id,
            "AVAIL:Title": data.get("title", ""),
            "EXIF:DateTimeOriginal": created[:19].replace("-", ":").replace("T", " "),
            "File:FileSize": f"{max(1, round(size / 1024))} KiB",
            "File:ImageHeight": height,
            "File:ImageWidth": width,
            "File:MIMEType": "image/jpeg",
            "SourceFile": f"/tmp/nasa-double/{nasa_id}~orig.jpg",
        }

    def _image_size(self, nasa_id: str, rendition: str) -> int:
        return _padded_size(len(_jpeg(self.seed, nasa_id, rendition)), self.image_bytes)

    def _image_stream(self, nasa_id: str, rendition: str) -> tuple[Iterator[bytes], int]:
        target = self.image_bytes
        jpeg = _jpeg(self.seed, nasa_id, rendition)
        return _padded_chunks(jpeg, target), _padded_size(len(jpeg), target)

    def image_bytes_for(self, nasa_id: str, rendition: str) -> bytes:
        """Exactly the body served for ``/image/<nasa_id>/<nasa_id>~<rendition>.jpg`` right now."""
        with self._lock:
            if nasa_id not in self._known:
                raise KeyError(nasa_id)
        if rendition not in RENDITION_DIMS:
            raise KeyError(rendition)
        chunks, _ = self._image_stream(nasa_id, rendition)
        return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.nasa_double", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--total-hits", type=int, default=250)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--image-bytes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    double = NasaDouble(
        total_hits=args.total_hits, image_bytes=args.image_bytes, delay=args.delay, seed=args.seed
    ).start(port=args.port)
    print(f"NASA double listening on {double.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
