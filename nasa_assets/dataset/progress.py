"""Progress of a download over several pages, as log lines a person can follow."""

import threading
import time


class Progress:
    """Counts shared by the download threads: a line when a page completes (unless the last line
    is under a second old: a re-run completes pages in milliseconds) and every few seconds.
    `log` is anything with an `info(str)` method."""

    def __init__(self, log, images_per_page: dict[str, int], every: float = 5.0, gap: float = 1.0):
        self.log, self.every, self.gap = log, every, gap
        self.left = dict(images_per_page)
        self.total, self.pages = sum(images_per_page.values()), len(images_per_page)
        self.pages_done = sum(1 for n in images_per_page.values() if n == 0)
        self.counts = {"stored": 0, "already_stored": 0, "failed": 0}
        self.bytes = 0
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, page: str, status: str, size: int = 0) -> None:
        with self._lock:
            self.counts[status] += 1
            self.bytes += size
            self.left[page] -= 1
            now = time.monotonic()
            if self.left[page] == 0:
                self.pages_done += 1
            if self.left[page] == 0 and now - self._last >= self.gap:
                message = f"page {page} done; {self._line(now)}"
            elif now - self._last >= self.every:
                message = self._line(now)
            else:
                return
            self._last = now
        self.log.info(message)

    def line(self) -> str:
        with self._lock:
            return self._line(time.monotonic())

    def mb_per_s(self) -> float:
        return round(self.bytes / 1e6 / max(time.monotonic() - self.started, 1e-6), 2)

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        done = sum(self.counts.values())
        return (f"{self.pages_done}/{self.pages} pages, {done}/{self.total} images: "
                f"{self.counts['stored']} stored, {self.counts['already_stored']} already stored, "
                f"{self.counts['failed']} failed; {self.bytes / 1e6 / elapsed:.1f} MB/s, "
                f"{self.counts['stored'] / elapsed:.0f} downloads/s")
