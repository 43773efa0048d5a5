"""A circuit breaker for one step's requests to the file host, so an outage is not hammered."""

import threading
import time

UNAVAILABLE = "file host unavailable"


class Breaker:
    """Shared by the concurrent requests of one step.

    After `threshold` consecutive failures (or a `trip`) it opens: requests wait `pause` seconds,
    then one probe goes out while the others wait for its outcome. A probe that succeeds closes the
    breaker; one that fails leaves it down for the rest of the step, and `before_request` answers
    False at once instead of sending anything."""

    def __init__(self, threshold: int = 10, pause: float = 30.0, clock=time.monotonic):
        if threshold < 1 or not pause >= 0:
            raise ValueError(f"breaker needs threshold >= 1 and pause >= 0, got {threshold}, {pause}")
        self.threshold, self.pause = threshold, pause
        self._clock = clock
        self._cond = threading.Condition()
        self.state = "closed"  # closed | open | probing | down
        self._consecutive = 0
        self._reopen_at = 0.0
        self._prober: int | None = None
        self.requests = 0
        self.failures = 0
        self.opened = 0

    def before_request(self) -> bool:
        """Whether a request may be sent now; blocks while the breaker is open or a probe is out."""
        with self._cond:
            while True:
                if self.state == "closed":
                    self.requests += 1
                    return True
                if self.state == "down":
                    return False
                if self.state == "open":
                    wait = self._reopen_at - self._clock()
                    if wait <= 0:
                        self.state, self._prober = "probing", threading.get_ident()
                        self.requests += 1
                        return True
                    self._cond.wait(wait)
                else:  # probing: the probe's outcome decides for everyone
                    self._cond.wait()

    def success(self) -> None:
        """The host answered (any status that is not a retryable error)."""
        with self._cond:
            self._consecutive = 0
            if self.state in ("open", "probing"):
                self.state, self._prober = "closed", None
                self._cond.notify_all()

    def failure(self) -> None:
        """A request failed the way an outage does: 5xx/429, refused, reset, timed out."""
        with self._cond:
            self.failures += 1
            self._consecutive += 1
            if self.state == "probing" and self._prober == threading.get_ident():
                self.state, self._prober = "down", None
                self._cond.notify_all()
            elif self.state == "closed" and self._consecutive >= self.threshold:
                self._open()

    def trip(self) -> None:
        """Open now, e.g. when the host asks for a wait longer than the client is willing to do."""
        with self._cond:
            if self.state == "closed":
                self._open()
            elif self.state == "probing" and self._prober == threading.get_ident():
                self.state, self._prober = "down", None
                self._cond.notify_all()

    def release(self) -> None:
        """The calling thread's request ended without an outcome (e.g. it could not be sent): if it
        was the probe, another request may probe instead."""
        with self._cond:
            if self.state == "probing" and self._prober == threading.get_ident():
                self.state, self._prober, self._reopen_at = "open", None, self._clock()
                self._cond.notify_all()

    @property
    def down(self) -> bool:
        return self.state == "down"

    def metadata(self) -> dict[str, int | bool]:
        """What the step reports: requests sent, failures seen, whether the breaker opened."""
        with self._cond:
            return {"file_host_requests": self.requests, "file_host_failures": self.failures,
                    "breaker_opened": self.opened > 0, "file_host_unavailable": self.state == "down"}

    def _open(self) -> None:
        self.state = "open"
        self.opened += 1
        self._reopen_at = self._clock() + self.pause
