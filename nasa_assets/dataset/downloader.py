"""The images of manifest pages into storage, one moon_images table per page.

An image the page's earlier table describes and storage still holds is not requested again; one
whose stored metadata names the same source URL is not downloaded again; an image on two pages of
the run is fetched once. Every image of every page goes to one bounded pool, so a page range has
no tail at page boundaries."""

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.fetch import download_to_store
from nasa_assets.dataset.imaging import ImageFacts, ImageRejected, source_digest
from nasa_assets.dataset.progress import Progress
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.errors import FetchError
from nasa_assets.nasa.urls import upgraded
from nasa_assets.storage import ObjectStore

IMAGES = "images/"
# What a download needs from a manifest row.
ENTRY_COLUMNS = ("nasa_id", "image_key", "rendition", "image_url")


def image_row(entry: Mapping, status: str, facts: ImageFacts | None = None,
              error: str | None = None, uri: str | None = None) -> dict:
    """A moon_images row for a manifest entry."""
    return {
        "nasa_id": entry["nasa_id"], "image_key": entry["image_key"], "image_uri": uri,
        "rendition": entry["rendition"], "source_url": upgraded(entry["image_url"]),  # as fetched
        "bytes": facts.bytes if facts else None, "sha256": facts.sha256 if facts else None,
        "width": facts.width if facts else None, "height": facts.height if facts else None,
        "format": facts.format if facts else None, "status": status, "error": error,
    }


def known_facts(store: ObjectStore, table: str) -> dict[str, tuple[ImageFacts, str]]:
    """(facts, source URL) by image key, from an earlier moon_images table stored under `table`."""
    try:
        previous = store.read_parquet(table)
    except (FileNotFoundError, ValueError):  # never materialized, or unreadable: no shortcut
        return {}
    previous = previous[previous["status"].isin(tables.STORED)]
    return {
        row.image_key: (
            ImageFacts(int(row.bytes), row.sha256, int(row.width), int(row.height), row.format),
            row.source_url,
        )
        for row in previous.itertuples()
    }


def facts_of_stored(store: ObjectStore, key: str, size: int, url: str) -> ImageFacts | None:
    """Facts kept with an object already in storage, if it was fetched from `url`; None when its
    origin is another URL (another rendition or host, e.g. the demo's double) or unknown: then it
    is downloaded again rather than trusted."""
    meta = store.metadata(key)
    facts = ImageFacts.from_metadata(meta)
    if facts and facts.bytes == size and meta.get("source") == source_digest(url):
        return facts
    return None


class _Copy(NamedTuple):
    """A row whose image another row of the run is already fetching: same key, one transfer."""
    first: Future
    page: str


@dataclass
class Downloaded:
    frames: dict[str, pd.DataFrame]  # the moon_images table of each page
    listing: dict[str, int]  # image key -> size, as listed before any write
    progress: Progress


class Downloader:
    """Downloads through `client` into `store`, `concurrency` transfers at a time; the step's
    file-host breaker stops them all when the host is down."""

    def __init__(self, client: NasaClient, store: ObjectStore, *, max_image_bytes: int,
                 concurrency: int, log):
        self.client, self.store, self.log = client, store, log
        self.max_image_bytes, self.concurrency = max_image_bytes, concurrency
        self.breaker = client.new_breaker()

    def download(
        self, manifests: Mapping[str, pd.DataFrame], earlier_tables: Mapping[str, str]
    ) -> Downloaded:
        """`manifests`: {page: sampled_manifest table}; `earlier_tables`: {page: store key of the
        page's previous moon_images table}, read for facts of images stored before."""
        progress = Progress(self.log, {page: len(frame) for page, frame in manifests.items()})
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            # One listing for the whole step (not one request per image), while the earlier
            # tables are read. Keys derive from nasa_id alone: a fact recorded on any page holds
            # on another.
            listing = pool.submit(self.store.sizes, IMAGES)
            earlier = [pool.submit(known_facts, self.store, t) for t in earlier_tables.values()]
            existing = listing.result()
            known: dict[str, tuple[ImageFacts, str]] = {}
            for table in earlier:
                known.update(table.result())
            transfers: dict[str, Future] = {}
            pending: dict[str, list] = {}
            for page, frame in manifests.items():
                pending[page] = slots = []
                for entry in frame[list(ENTRY_COLUMNS)].to_dict("records"):
                    key = entry["image_key"]
                    if (row := self._known_row(entry, known, existing)) is not None:
                        progress.add(page, "already_stored")
                        slots.append(row)
                    elif key in transfers:
                        slots.append(_Copy(transfers[key], page))
                    else:
                        transfers[key] = pool.submit(
                            self._materialize, page, entry, existing, progress
                        )
                        slots.append(transfers[key])
            try:
                frames = {page: tables.frame("moon_images", [_settle(s, progress) for s in slots])
                          for page, slots in pending.items()}
            except BaseException:
                for transfer in transfers.values():
                    transfer.cancel()
                raise
        return Downloaded(frames, existing, progress)

    def _known_row(self, entry, known, existing) -> dict | None:
        """The row of an image an earlier table describes and storage still holds: no request."""
        facts, source = known.get(entry["image_key"], (None, None))
        if (facts is None or source != upgraded(entry["image_url"])
                or existing.get(entry["image_key"]) != facts.bytes):
            return None
        return image_row(entry, "already_stored", facts, uri=self.store.uri(entry["image_key"]))

    def _materialize(self, page: str, entry, existing: dict[str, int], progress: Progress) -> dict:
        key = entry["image_key"]
        if key in existing:
            facts = facts_of_stored(self.store, key, existing[key], entry["image_url"])
            if facts:
                progress.add(page, "already_stored")
                return image_row(entry, "already_stored", facts, uri=self.store.uri(key))
        try:
            facts = download_to_store(self.client, self.store, entry["image_url"], key,
                                      self.max_image_bytes, breaker=self.breaker)
        except (FetchError, ImageRejected) as error:
            progress.add(page, "failed")
            return image_row(entry, "failed", error=error.reason)
        progress.add(page, "stored", facts.bytes)
        return image_row(entry, "stored", facts, uri=self.store.uri(key))


def _settle(slot, progress: Progress) -> dict:
    if isinstance(slot, _Copy):
        row = dict(slot.first.result())
        if row["status"] == "stored":
            row["status"] = "already_stored"
        progress.add(slot.page, row["status"])
        return row
    return slot.result() if isinstance(slot, Future) else slot
