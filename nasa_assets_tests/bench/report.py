"""The benchmark's results and how they are printed: plain data in, Markdown out."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PathResult:
    """One way of ingesting the same pages, measured end to end."""

    name: str
    command: str
    images: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    cpu_seconds: float | None = None
    requests: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # name -> seconds
    rss_by_step: dict[str, float] = field(default_factory=dict)  # step that logged last -> peak MB
    events: dict[str, int] = field(default_factory=dict)  # job -> events Dagster stored for its run
    note: str = ""
    error: str = ""
    bucket: str = ""  # where the path stored its images

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def requests_text(self) -> str:
        if not self.requests:
            return ""
        return (f"{self.requests.get('search', 0)} / {self.requests.get('collection', 0)} / "
                f"{self.requests.get('image', 0)}")


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not measured in this run


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(value: str) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def paths_table(results: list[PathResult]) -> str:
    rows = []
    for r in results:
        if r.error:
            rows.append([r.name, "", "", "", "", "", "", f"not measured: {r.error}"])
            continue
        rows.append([
            r.name, str(r.images), f"{r.seconds:.1f} s", f"{r.rate:.1f}", f"{r.peak_rss_mb:.0f} MB",
            f"{r.peak_pss_mb:.0f} MB", r.requests_text(), r.note,
        ])
    return markdown_table(
        ["path", "images", "wall", "images/s", "peak RSS (tree)", "peak PSS (tree)",
         "search / collection.json / image requests", "notes"], rows)


def phases_table(results: list[PathResult]) -> str:
    rows = [[r.name, ", ".join([f"{k} {v:.2f} s" + (")" if k.startswith("(") else "") for k, v in r.phases.items()]
                               + [f"{n} Dagster events stored by {job}" for job, n in r.events.items()]),
             ", ".join(f"{k} {v:.0f} MB" for k, v in r.rss_by_step.items())]
            for r in results if r.phases or r.rss_by_step]
    return markdown_table(["path", "where the time goes", "peak RSS (tree) while each step logged last"], rows)


def targets_table(targets: list[Target]) -> str:
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    return markdown_table(["target", "measured", "goal", "met?"],
                          [[t.name, t.measured, t.goal, verdict[t.met]] for t in targets])


def median(results: list[PathResult]) -> PathResult:
    """The run with the median wall time (failed runs first: a failure is never hidden), noting
    every run's time."""
    failed = [r for r in results if r.error]
    if failed or len(results) == 1:
        return (failed or results)[0]
    ordered = sorted(results, key=lambda r: r.seconds)
    chosen = ordered[(len(ordered) - 1) // 2]
    pages = ", ".join(f"{r.seconds:.1f}" for r in results)
    chosen.note = f"median of {len(results)} one-page runs ({pages} s)" + (f"; {chosen.note}" if chosen.note else "")
    return chosen


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def side_by_side_targets(by_key: dict[str, PathResult]) -> list[Target]:
    """The issue's targets from the measured paths; a path that was skipped or failed leaves its
    target "not measured" rather than failed."""

    def ok(key: str) -> PathResult | None:
        result = by_key.get(key)
        return result if result is not None and not result.error and result.seconds > 0 else None

    targets = []
    mat, i2d = ok("materialize"), ok("img2dataset")
    if mat and i2d:
        speed = ratio(mat.rate, i2d.rate)
        share = ratio(mat.peak_rss_mb, i2d.peak_rss_mb)
        targets.append(Target(f"{mat.images} images, `dagster asset materialize` vs img2dataset: images/s",
                              f"{mat.rate:.1f} vs {i2d.rate:.1f} = {speed:.2f}x", ">= 1.5x", speed >= 1.5))
        targets.append(Target("... its peak RSS vs img2dataset's",
                              f"{mat.peak_rss_mb:.0f} MB vs {i2d.peak_rss_mb:.0f} MB = {share:.2f}",
                              "<= 1/3 and <= 350 MB", share <= 1 / 3 and mat.peak_rss_mb <= 350))
    else:
        targets.append(Target("`dagster asset materialize` vs img2dataset", "", ">= 1.5x images/s at "
                              "<= 1/3 RSS, <= 350 MB", None))
    mat500, seq500 = ok("materialize_500"), ok("sequential_500")
    if mat500 and seq500:
        speed = ratio(mat500.rate, seq500.rate)
        targets.append(Target(f"{mat500.images} images, `dagster asset materialize` vs the sequential loop",
                              f"{mat500.seconds:.1f} s vs {seq500.seconds:.1f} s = {speed:.1f}x", ">= 4x",
                              speed >= 4))
    else:
        targets.append(Target("500 images, `dagster asset materialize` vs the sequential loop", "", ">= 4x", None))
    dev1, cli1 = ok("dev_1"), ok("cli_1")
    if dev1 and cli1:
        slow = ratio(dev1.seconds, cli1.seconds)
        targets.append(Target("one page, launched into `dagster dev` vs `python -m nasa_assets run`",
                              f"{dev1.seconds:.1f} s vs {cli1.seconds:.1f} s = {slow:.2f}x", "<= 2x", slow <= 2))
    else:
        targets.append(Target("one page through `dagster dev` vs the CLI", "", "<= 2x", None))
    return targets


@dataclass
class WholeResult:
    """100 pages in one command, then the same command again."""

    first: PathResult
    rss_after: dict[str, float]  # "page 10" -> MB
    again: PathResult | None = None


def flat(rss_after: dict[str, float]) -> bool | None:
    if "page 10" not in rss_after or "page 100" not in rss_after:
        return None
    return rss_after["page 100"] <= 1.1 * rss_after["page 10"]


def whole_targets(whole: WholeResult) -> list[Target]:
    first, again = whole.first, whole.again
    if first.error:
        return [Target("the whole collection", "", "", None)]
    targets = [
        Target(f"{first.images} images in one command: images/s", f"{first.rate:.1f}", ">= 150",
               first.rate >= 150),
        Target("... peak RSS (tree)", f"{first.peak_rss_mb:.0f} MB", "<= 400 MB", first.peak_rss_mb <= 400),
        Target("... RSS after page 10 / after page 100",
               " / ".join(f"{whole.rss_after[k]:.0f} MB" if k in whole.rss_after else "?"
                          for k in ("page 10", "page 100")), "flat (at most +10%)", flat(whole.rss_after)),
    ]
    if again is None or again.error:
        targets.append(Target("the re-run", again.error if again else "", "<= 10 s, 0 downloads", None))
        return targets
    targets += [
        Target("re-run: wall time", f"{again.seconds:.1f} s", "<= 10 s", again.seconds <= 10),
        Target("re-run: image downloads", str(again.requests.get("image", 0)), "0",
               again.requests.get("image", 0) == 0),
        Target("re-run: collection.json requests", str(again.requests.get("collection", 0)), "0",
               again.requests.get("collection", 0) == 0),
    ]
    return targets


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        load = "load average at start " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return (f"{os.cpu_count()} cores ({model}), {platform.machine()}{mem}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}; {load}")
