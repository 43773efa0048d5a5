"""A client-side request budget per rolling hour, shared by every client in the process."""

import threading
import time
from collections import deque


class RateLimiter:
    """Blocks until a request fits in `limit` requests per `window` seconds (sliding window)."""

    def __init__(self, limit: int, window: float = 3600.0, clock=time.monotonic, sleep=time.sleep):
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 request per window, got {limit}")
        self.limit, self.window = limit, window
        self._clock, self._sleep = clock, sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds until the next request would be allowed (0 when it would be now)."""
        with self._lock:
            self._expire(self._clock())
            if len(self._stamps) < self.limit:
                return 0.0
            return self._stamps[0] + self.window - self._clock()

    def acquire(self) -> None:
        """Take one slot, waiting as long as the window asks."""
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                wait = self._stamps[0] + self.window - now
            self._sleep(min(wait, 60.0))

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()


_shared: dict[tuple[str, int], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: str, limit: int) -> RateLimiter:
    """One limiter per (API root, limit) in this process, so concurrent steps share the budget."""
    key = key.rstrip("/")  # "https://images-api.nasa.gov/" is the same API as without the slash
    with _shared_lock:
        return _shared.setdefault((key, limit), RateLimiter(limit))


def clear_shared_limiters() -> None:
    """Forget every shared limiter: the next shared_limiter call starts a full budget. For a
    process that starts over, such as each test against a new NASA double."""
    with _shared_lock:
        _shared.clear()
