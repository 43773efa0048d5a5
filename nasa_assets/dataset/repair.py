"""Which pages the refresh sensor repairs, and when. Pure functions, no I/O.

A page needs repair when its last run of moon_images_job failed or was canceled, when its latest
moon_images table has failed images, or when it is inside the hit range and was never
materialized. The sensor (nasa_assets/sensors.py) reads that from the instance and hands it here
as one `PageHealth` per page.

Each failed outcome (a run that left the page broken) counts once. After the n-th consecutive one,
the page waits ``backoff_seconds * 2 ** (n - 1)`` seconds (at most ``backoff_max_seconds``) from
the end of that run before it is requested again; a page that is healthy again is forgotten, so
its next failure waits the first interval again. A page never run waits for nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

FAILED_RUN_STATUSES = frozenset({"FAILURE", "CANCELED"})


@dataclass(frozen=True)
class RepairPolicy:
    backoff_seconds: float = 300.0
    backoff_max_seconds: float = 21600.0
    max_runs_per_tick: int = 5
    excluded: frozenset[str] = frozenset()  # page keys never repaired

    def wait(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (none before the first)."""
        if failures <= 0:
            return 0.0
        # The exponent is capped so a page failing for months cannot overflow the float.
        return min(self.backoff_seconds * 2.0 ** min(failures - 1, 60), self.backoff_max_seconds)


@dataclass(frozen=True)
class LastRun:
    """The latest finished run of moon_images_job that covered a page."""

    run_id: str
    status: str  # a DagsterRunStatus value: SUCCESS, FAILURE or CANCELED
    ended_at: float


@dataclass(frozen=True)
class LastImages:
    """The latest materialization of moon_images for a page."""

    run_id: str
    failed: int  # images of the page that failed (its per-page `failed` metadata)
    at: float


@dataclass(frozen=True)
class PageHealth:
    key: str
    problem: str | None  # why the page needs repair; None when it does not
    outcome: str = ""  # the run that left the page so ("" when no run ever covered it)
    at: float | None = None  # when that run ended


def page_health(
    key: str, last_run: LastRun | None, images: LastImages | None, in_range: bool
) -> PageHealth:
    """What the latest evidence says about one page: a run that failed after the page's latest
    materialization, failed images in that materialization, or no materialization at all."""
    if last_run and last_run.status in FAILED_RUN_STATUSES and (
        images is None or last_run.ended_at > images.at
    ):
        return PageHealth(key, f"last run {last_run.status}", last_run.run_id, last_run.ended_at)
    if images is not None and images.failed > 0:
        return PageHealth(key, f"{images.failed} failed images", images.run_id, images.at)
    if images is None and in_range:
        if last_run is not None:
            return PageHealth(key, "never materialized", last_run.run_id, last_run.ended_at)
        return PageHealth(key, "never materialized")
    return PageHealth(key, None)


@dataclass(frozen=True)
class Backoff:
    """A page's consecutive failed outcomes, and the latest one counted (its run and end)."""

    failures: int
    outcome: str
    at: float

    def to_json(self) -> list:
        return [self.failures, self.outcome, self.at]

    @classmethod
    def from_json(cls, value: object) -> Backoff:
        failures, outcome, at = value  # type: ignore[misc]
        return cls(int(failures), str(outcome), float(at))


@dataclass(frozen=True)
class Repair:
    key: str
    problem: str
    attempt: int  # 1 for the first repair after a failure (0: the page never ran)
    outcome: str

    @property
    def run_key(self) -> str:
        """New for every failed outcome, so a failure never blocks the next attempt, and the same
        within one, so a retried tick cannot request a page twice."""
        return f"repair-{self.key}-a{self.attempt}-{self.outcome[:8] or 'new'}"

    @property
    def tags(self) -> dict[str, str]:
        return {"nasa/repair": self.problem, "nasa/repair_attempt": str(self.attempt)}


@dataclass(frozen=True)
class RepairPlan:
    runs: list[Repair]  # at most max_runs_per_tick, the longest overdue first
    state: dict[str, Backoff]  # the backoff to remember, for pages still broken
    waiting: dict[str, float]  # broken pages not requested now: seconds until they are due
    busy: list[str]  # broken pages that already have a queued or running run

    def summary(self) -> str:
        parts = []
        if self.runs:
            parts.append("repair " + ", ".join(f"{r.key} ({r.problem})" for r in self.runs))
        if self.waiting:
            parts.append("waiting " + ", ".join(
                f"{k} ({s:.0f} s)" if s > 0 else f"{k} (next tick)" for k, s in self.waiting.items()
            ))
        if self.busy:
            parts.append("running " + ", ".join(self.busy))
        return "; ".join(parts) or "no page needs repair"


def plan_repairs(
    health: Iterable[PageHealth],
    busy: Collection[str],
    state: Mapping[str, Backoff],
    now: float,
    policy: RepairPolicy,
    requested: Collection[str] = (),
) -> RepairPlan:
    """The repair runs of this tick and the backoff to remember.

    ``busy``: pages with a queued or running run (never requested again); ``requested``: pages
    this tick requests anyway (for a change at NASA), so no repair run is added for them."""
    new_state: dict[str, Backoff] = {}
    due: list[tuple[float, Repair]] = []
    waiting: dict[str, float] = {}
    running: list[str] = []
    for page in sorted(health, key=lambda h: h.key):
        if page.problem is None or page.key in policy.excluded:
            continue  # healthy (or left alone): forgotten, the next failure starts over
        before = state.get(page.key)
        if page.outcome and (before is None or before.outcome != page.outcome):
            # A failed outcome not counted yet: one more consecutive failure.
            at = page.at if page.at is not None else now
            before = Backoff((before.failures if before else 0) + 1, page.outcome, at)
        if before is not None:
            new_state[page.key] = before
        if page.key in busy:
            running.append(page.key)
            continue
        if page.key in requested:
            continue
        failures = before.failures if before else 0
        ready_at = (before.at if before else now) + policy.wait(failures)
        repair = Repair(page.key, page.problem, failures, page.outcome)
        if ready_at <= now:
            due.append((ready_at, repair))
        else:
            waiting[page.key] = ready_at - now
    due.sort(key=lambda d: (d[0], d[1].key))
    limit = max(policy.max_runs_per_tick, 0)
    for _, held in due[limit:]:
        waiting[held.key] = 0.0  # due, but over this tick's bound
    runs = [r for _, r in due[:limit]]
    return RepairPlan(runs, new_state, dict(sorted(waiting.items())), running)
