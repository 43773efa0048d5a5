import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg
import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.downloader import download_to_store
from nasa_assets.dataset.imaging import (
    ImageFacts,
    ImageRejected,
    sha256_of,
    source_digest,
)
from nasa_assets.defs.assets.pages import PAGE_ASSET_OPTIONS, page_output
from nasa_assets.defs.assets.sampled_manifest import MANIFEST_VALID
from nasa_assets.defs.io_manager import table_path
from nasa_assets.defs.resources import DatasetSettings, DatasetStorage, NasaApiResource
from nasa_assets.nasa.client import FetchError
from nasa_assets.nasa.urls import parse_allowed_hosts, upgraded, url_block_reason
from nasa_assets.storage import LocalStore, ObjectStore

IMAGES_COMPLETE = "images_complete"
HASH_SAMPLE_PER_PAGE = 5
STORED = ("stored", "already_stored")


class Progress:
    """Counts shared by the download threads: a line when a page completes (unless the last line
    is under a second old: a re-run completes pages in milliseconds) and every few seconds."""

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

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        done = sum(self.counts.values())
        return (f"{self.pages_done}/{self.pages} pages, {done}/{self.total} images: "
                f"{self.counts['stored']} stored, {self.counts['already_stored']} already stored, "
                f"{self.counts['failed']} failed; {self.bytes / 1e6 / elapsed:.1f} MB/s, "
                f"{self.counts['stored'] / elapsed:.0f} downloads/s")


def _known_facts(store: ObjectStore, table: str) -> dict[str, tuple[ImageFacts, str]]:
    """(facts, source URL) recorded by an earlier materialization of a page, by image key."""
    try:
        previous = store.read_parquet(table)
    except (FileNotFoundError, ValueError):  # never materialized, or unreadable: no shortcut
        return {}
    previous = previous[previous["status"].isin(STORED)]
    return {
        row.image_key: (
            ImageFacts(int(row.bytes), row.sha256, int(row.width), int(row.height), row.format),
            row.source_url,
        )
        for row in previous.itertuples()
    }


def _facts_of_stored(store: ObjectStore, key: str, size: int, url: str) -> ImageFacts | None:
    """Facts kept with an object already in storage, if it was fetched from `url`; None when its
    origin is another URL (another rendition or host, e.g. the demo's double) or unknown: then it
    is downloaded again rather than trusted."""
    meta = store.metadata(key)
    facts = ImageFacts.from_metadata(meta)
    if facts and facts.bytes == size and meta.get("source") == source_digest(url):
        return facts
    return None


def refusal_reason(evaluations: list[dg.AssetCheckEvaluation]) -> str | None:
    """Why a page's images may not be downloaded, given the manifest_valid evaluations of the run
    that wrote the page's manifest (its last one decides); None when that evaluation passed."""
    if not evaluations:
        return f"{MANIFEST_VALID} was not evaluated in the run that wrote the manifest"
    last = evaluations[-1]
    if last.passed or last.severity != dg.AssetCheckSeverity.ERROR:
        return None
    problems = last.metadata.get("problems")
    return f"{MANIFEST_VALID} failed: {problems.value if problems else 'no problems recorded'}"


def refused_pages(instance: dg.DagsterInstance, manifest_key: dg.AssetKey, pages) -> dict[str, str]:
    """page -> reason, for the pages whose latest sampled_manifest materialization did not pass
    manifest_valid. The check is recorded for the whole step (no partition), so the page's latest
    materialization names the run, and that run's evaluation is the page's. A page with no
    recorded materialization (another instance wrote it) is not refused."""
    by_run: dict[str, str | None] = {}
    refused = {}
    for page in pages:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=manifest_key, asset_partitions=[page]), limit=1
        ).records
        if not records:
            continue
        run_id = records[0].run_id
        if run_id not in by_run:
            events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            evaluations = [e.dagster_event.event_specific_data for e in events]
            by_run[run_id] = refusal_reason([
                e for e in evaluations if e.asset_key == manifest_key and e.check_name == MANIFEST_VALID
            ])
        if by_run[run_id]:
            refused[page] = f"{by_run[run_id]} (run {run_id[:8]})"
    return refused


def _entries(manifest: pd.DataFrame) -> list[dict]:
    """What a download needs from each manifest row, in manifest order."""
    return manifest[["nasa_id", "image_key", "rendition", "image_url"]].to_dict("records")


class _SameObject:
    """A row whose image another page of the same step is already fetching: same key, one transfer."""

    def __init__(self, first: Future, page: str):
        self.first, self.page = first, page

    def result(self, progress: "Progress") -> dict:
        row = dict(self.first.result())
        if row["status"] == "stored":
            row["status"] = "already_stored"
        progress.add(self.page, row["status"])
        return row


def _done(row, progress: "Progress") -> dict:
    if isinstance(row, _SameObject):
        return row.result(progress)
    return row.result() if isinstance(row, Future) else row


def _row(entry, status: str, facts: ImageFacts | None = None, error: str | None = None, uri=None) -> dict:
    return {
        "nasa_id": entry["nasa_id"], "image_key": entry["image_key"], "image_uri": uri,
        "rendition": entry["rendition"], "source_url": upgraded(entry["image_url"]),  # as fetched
        "bytes": facts.bytes if facts else None, "sha256": facts.sha256 if facts else None,
        "width": facts.width if facts else None, "height": facts.height if facts else None,
        "format": facts.format if facts else None, "status": status, "error": error,
    }


@dg.asset(
    **PAGE_ASSET_OPTIONS,
    kinds={"python", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            IMAGES_COMPLETE, asset="moon_images",
            description="Every manifest row is stored or failed with a reason, stored objects exist "
            "with their recorded size (sha256 re-read for a sample of those written by the run), "
            "failures within budget.",
        )
    ],
)
def moon_images(
    context: dg.AssetExecutionContext,
    sampled_manifest,
    nasa: NasaApiResource,
    settings: DatasetSettings,
    storage: DatasetStorage,
):
    """The page's images, streamed from NASA's file host into `images/` of the dataset root,
    one row each.

    Images already in storage are not downloaded again (status already_stored). A page whose
    latest manifest did not pass manifest_valid is refused, also in a run of moon_images alone."""
    manifests = sampled_manifest
    manifest_key = context.asset_key_for_input("sampled_manifest")
    refused = refused_pages(context.instance, manifest_key, manifests)
    if refused:
        # Before any request or write: the page's moon_images table and images stay as they were.
        raise dg.Failure(
            description="moon_images refused, nothing downloaded or overwritten: "
            + "; ".join(f"page {page}: {why}" for page, why in refused.items())
            + ". Fix the cause, then materialize sampled_manifest for these pages again.",
            metadata={"refused_pages": refused},
        )
    client, store = nasa.client(), storage.store()
    breaker = client.new_breaker()  # one per step: an outage stops all of its downloads
    if isinstance(store, LocalStore) and (removed := store.remove_orphans()):
        context.log.info(f"removed {removed} temporary files left by killed runs")
    progress = Progress(context.log, {page: len(frame) for page, frame in manifests.items()})
    existing: dict[str, int] = {}
    known: dict[str, tuple[ImageFacts, str]] = {}

    def known_row(page, entry) -> dict | None:
        """The row of an image an earlier table describes and storage still holds: no request."""
        facts, source = known.get(entry["image_key"], (None, None))
        if (facts is None or source != upgraded(entry["image_url"])
                or existing.get(entry["image_key"]) != facts.bytes):
            return None
        progress.add(page, "already_stored")
        return _row(entry, "already_stored", facts, uri=store.uri(entry["image_key"]))

    def materialize_one(page, entry):
        key = entry["image_key"]
        if key in existing:
            facts = _facts_of_stored(store, key, existing[key], entry["image_url"])
            if facts:
                progress.add(page, "already_stored")
                return _row(entry, "already_stored", facts, uri=store.uri(key))
        try:
            facts = download_to_store(client, store, entry["image_url"], key, settings.max_image_bytes,
                                      breaker=breaker)
        except (FetchError, ImageRejected) as error:
            progress.add(page, "failed")
            return _row(entry, "failed", error=error.reason)
        progress.add(page, "stored", facts.bytes)
        return _row(entry, "stored", facts, uri=store.uri(key))

    # Every image of every page of the run goes to one bounded pool: no tail at page boundaries.
    with ThreadPoolExecutor(max_workers=settings.download_concurrency) as pool:
        # One listing for the whole step (not one request per image), while the earlier tables
        # are read. Keys derive from nasa_id alone: a fact recorded on any page holds on another.
        listing = pool.submit(store.sizes, "images/")
        earlier = [pool.submit(_known_facts, store, table_path(context.asset_key, page)) for page in manifests]
        existing.update(listing.result())
        for table in earlier:
            known.update(table.result())
        transfers: dict[str, Future] = {}

        def schedule(page, entry):
            row = known_row(page, entry)
            if row is not None:
                return row
            if entry["image_key"] in transfers:  # the same nasa_id on two pages of this run
                return _SameObject(transfers[entry["image_key"]], page)
            transfers[entry["image_key"]] = pool.submit(materialize_one, page, entry)
            return transfers[entry["image_key"]]

        pending = {page: [schedule(page, e) for e in _entries(frame)] for page, frame in manifests.items()}
        try:
            frames = {
                page: tables.frame("moon_images", [_done(r, progress) for r in rows])
                for page, rows in pending.items()
            }
        except BaseException:
            for rows in pending.values():
                for row in rows:
                    if isinstance(row, Future):
                        row.cancel()
            raise
        combined = pd.concat(frames.values(), ignore_index=True)
        check = _completeness(store, manifests, combined, settings.max_failed_fraction, existing, pool)
    context.log.info(f"moon_images done; {progress.line()}; file host: {breaker.metadata()}")
    per_page = {page: _counts(frame) for page, frame in frames.items()}
    yield page_output(
        context, frames, per_page,
        {
            "download_mb_per_s": round(progress.bytes / 1e6 / max(time.monotonic() - progress.started, 1e-6), 2),
            "images_root": store.uri("images/"),
            **breaker.metadata(),
            "preview": dg.MetadataValue.md(_preview(combined, _thumbnails(manifests, nasa.allowed_hosts))),
        },
    )
    yield check


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    statuses = {status: int((frame["status"] == status).sum()) for status in ("stored", "already_stored", "failed")}
    return {"row_count": len(frame), **statuses,
            "bytes_stored": int(frame.loc[frame["status"] == "stored", "bytes"].sum())}


def _completeness(store: ObjectStore, manifests: dict, images: pd.DataFrame, max_failed: float,
                  listed: dict[str, int], pool: ThreadPoolExecutor):
    """`listed` is the step's own listing, taken before any write: already_stored rows were matched
    against it, so storage is listed again only when this run wrote objects, and the sha256 sample
    is drawn from the objects this run wrote (read back concurrently)."""
    problems = []
    expected = set().union(*(set(m["nasa_id"]) for m in manifests.values())) if manifests else set()
    missing = expected - set(images["nasa_id"])
    if missing:
        problems.append(f"{len(missing)} manifest rows have no image row, e.g. {sorted(missing)[:3]}")
    failed = images[images["status"] == "failed"]
    unexplained = failed["error"].isna() | (failed["error"] == "")
    if unexplained.any():
        problems.append(f"{int(unexplained.sum())} failed rows without a reason")
    stored = images[images["status"].isin(STORED)]
    written = images[images["status"] == "stored"]
    sizes = store.sizes("images/") if len(written) else listed
    wrong = list(stored["image_key"][stored["image_key"].map(sizes) != stored["bytes"]])
    if wrong:
        problems.append(f"{len(wrong)} stored objects missing or of another size, e.g. {wrong[:3]}")
    candidates = list(written[~written["image_key"].isin(wrong)].itertuples())
    sample = random.Random(0).sample(candidates, min(len(candidates), HASH_SAMPLE_PER_PAGE * len(manifests)))
    hashes = pool.map(lambda r: sha256_of(store.iter_chunks(r.image_key)), sample)
    bad_hash = [r.image_key for r, digest in zip(sample, hashes) if digest != r.sha256]
    if bad_hash:
        problems.append(f"sha256 mismatch for {bad_hash[:3]}")
    failed_share = len(failed) / len(images) if len(images) else 0.0
    if failed_share > max_failed:
        problems.append(f"{len(failed)} of {len(images)} images failed (budget {max_failed:.0%})")
    return dg.AssetCheckResult(
        check_name=IMAGES_COMPLETE,
        passed=not problems,
        metadata={
            "problems": problems,
            "failed": len(failed),
            "failed_examples": [{"nasa_id": r.nasa_id, "error": r.error} for r in failed.head(5).itertuples()],
            "hash_verified": len(sample),
        },
    )


def _thumbnails(manifests: dict[str, pd.DataFrame], allowed_hosts: str) -> dict[str, str]:
    """NASA's own thumbnail of each item, for the UI preview; only URLs on the allowed hosts, so a
    hostile item cannot make the UI load something else."""
    allowed = parse_allowed_hosts(allowed_hosts)
    return {
        row.nasa_id: row.preview_url
        for frame in manifests.values() for row in frame[["nasa_id", "preview_url"]].itertuples()
        if url_block_reason(row.preview_url, allowed) is None and not set("()[] <>") & set(row.preview_url)
    }


def _preview(frame: pd.DataFrame, thumbnails: dict[str, str] | None = None, limit: int = 6) -> str:
    stored = frame[frame["status"].isin(STORED)].head(limit)
    if stored.empty:
        return "_no images stored_"
    thumbnails = thumbnails or {}
    lines = ["| thumbnail | nasa_id | size | bytes | stored at |", "|---|---|---|---|---|"]
    for row in stored.itertuples():
        thumb = f"![{row.nasa_id}]({thumbnails[row.nasa_id]})" if row.nasa_id in thumbnails else ""
        lines.append(f"| {thumb} | {row.nasa_id} | {row.width}x{row.height} {row.format} | {row.bytes} | "
                     f"[{row.image_key}]({row.image_uri}) |")
    return "\n".join(lines)
