"""The NasaDouble: lifecycle, configuration and scripted faults."""

from __future__ import annotations

import collections
import socket
import threading
import time
from typing import Any

from nasa_assets_tests.nasa_double.answers import Answers
from nasa_assets_tests.nasa_double.corpus import _real_items
from nasa_assets_tests.nasa_double.server import _Handler, _Server


class NasaDouble(Answers):
    """Test double of the NASA Image and Video Library search API and its file host.

    Faults (see ``faults``): ``{kind: [fault, ...]}`` queues one fault per request of that kind
    (None = answer normally); ``by_id: {nasa_id: fault}`` hits every image request of an item;
    ``by_page: {page: fault}`` hits every search request of a page number (pages of one run are
    fetched concurrently, so a queue cannot say which page a fault lands on);
    ``always: {kind: fault}`` hits every request of a kind until faults are set again (an outage).
    Faults: "429", "500", "502", "503", "reset", "html", "bomb", "huge", "truncate", "hold",
    "slow:<s>", "redirect:<url>", "trickle:<bytes per s>" (honest Content-Length, slow body) and,
    for search, "empty" (200 with total_hits kept and no items).
    """

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
        self._queries: dict[str, list[dict]] = {}  # q -> a corpus of its own (add_query)
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
        # stop() waits for the serving loop to wake up: a 10 ms poll keeps every test teardown at
        # about 10 ms (50 ms cost a second per 20 tests) for well under 1% of a core while it runs.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.01,), name="nasa-double", daemon=True
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
        """Scripted faults, normalised (the class docstring lists them)."""
        return self._faults

    @faults.setter
    def faults(self, value: dict) -> None:
        value = dict(value or {})
        normalized: dict = {kind: list(value.pop(kind, []) or []) for kind in ("search", "collection", "image")}
        normalized["by_id"] = dict(value.pop("by_id", {}) or {})
        normalized["by_page"] = {int(k): v for k, v in (value.pop("by_page", {}) or {}).items()}
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
