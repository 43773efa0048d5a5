"""The HTTP side: one handler for both hosts, faults applied per request, and the control surface
under /__double__/."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

_JSON_TYPE = "application/json; charset=UTF-8"
_KINDS = ("search", "collection", "image", "metadata", "other")
_CONTROL_PREFIX = "/__double__/"
_SIMPLE_STATUS_FAULTS = {"429": 429, "500": 500, "502": 502, "503": 503}

_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Temporarily unavailable</h1><p>Please try again later.</p></body></html>\n"
)

from nasa_assets_tests.nasa_double.images import (
    CHUNK_SIZE,
    HUGE_BYTES,
    _jpeg,
    _padded_chunks,
    _padded_size,
    _trickled,
    bomb_png,
)

if TYPE_CHECKING:
    from nasa_assets_tests.nasa_double.double import NasaDouble


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
        fault = double._take_fault(kind, nasa_id, _search_page(split.query) if kind == "search" else None)
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


def _search_page(query: str) -> int | None:
    """The page number a search request asks for, when it is one."""
    value = parse_qs(query).get("page", [""])[0]
    return int(value) if value.isdigit() else None
