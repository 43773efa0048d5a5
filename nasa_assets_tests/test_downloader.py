"""The Dagster-free downloader: manifest pages in, one moon_images table per page out, against the
NASA double and a local store."""

import pandas as pd
import pytest

from nasa_assets.dataset import tables
from nasa_assets.dataset.downloader import Downloader
from nasa_assets.dataset.keys import image_key
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage import LocalStore


class Log:
    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)


def manifest(double, positions) -> pd.DataFrame:
    rows = []
    for position in positions:
        nasa_id = double.corpus()[position]["data"][0]["nasa_id"]
        url = f"{double.base_url}/image/{nasa_id}/{nasa_id}~large.jpg"
        rows.append({"nasa_id": nasa_id, "image_key": image_key(nasa_id, url), "rendition": "large",
                     "image_url": url})
    return pd.DataFrame(rows)


@pytest.fixture
def downloader(nasa_double, tmp_path):
    client = NasaClient(base_url=nasa_double.base_url,
                        allowed_hosts=parse_allowed_hosts(nasa_double.host),
                        rate_limiter=RateLimiter(10_000), max_retries=0)
    log = Log()
    yield Downloader(client, LocalStore(tmp_path), max_image_bytes=1 << 24, concurrency=4, log=log), log
    client.close()


def test_pages_become_moon_images_tables_and_a_shared_image_is_fetched_once(nasa_double, downloader):
    loader, _ = downloader
    pages = {"0001": manifest(nasa_double, [0, 1, 2]), "0002": manifest(nasa_double, [2, 3])}
    done = loader.download(pages, {})
    assert list(done.frames) == ["0001", "0002"]
    assert list(done.frames["0001"].columns) == [f.name for f in tables.SCHEMAS["moon_images"]]
    assert done.frames["0001"]["status"].tolist() == ["stored"] * 3
    # The item on both pages: one transfer, the second row says already_stored with the same facts.
    assert done.frames["0002"]["status"].tolist() == ["already_stored", "stored"]
    first, copy = done.frames["0001"].iloc[2], done.frames["0002"].iloc[0]
    same = ["sha256", "bytes", "image_key", "image_uri"]
    assert copy[same].tolist() == first[same].tolist()
    assert nasa_double.counts["image"] == 4
    assert done.listing == {}  # listed before any write
    assert done.progress.counts == {"stored": 4, "already_stored": 1, "failed": 0}
    assert done.progress.line().startswith("2/2 pages, 5/5 images: 4 stored, 1 already stored, 0 failed")
    stored = loader.store.sizes("images/")
    assert sorted(stored) == sorted({*done.frames["0001"]["image_key"], *done.frames["0002"]["image_key"]})


def test_a_second_download_requests_nothing(nasa_double, downloader, tmp_path):
    loader, _ = downloader
    pages = {"0001": manifest(nasa_double, [0, 1])}
    first = loader.download(pages, {}).frames["0001"]
    tables.write_table(loader.store, "moon_images/0001.parquet", "moon_images", first)
    nasa_double.reset_counts()

    # From the earlier table: no request, no metadata read.
    again = loader.download(pages, {"0001": "moon_images/0001.parquet"}).frames["0001"]
    assert nasa_double.counts["image"] == 0
    assert again["status"].tolist() == ["already_stored"] * 2
    columns = ["nasa_id", "image_key", "image_uri", "bytes", "sha256", "width", "height", "format"]
    assert again[columns].equals(first[columns])
    # Without it: the stored objects' own metadata names their source, still no download.
    again = loader.download(pages, {}).frames["0001"]
    assert nasa_double.counts["image"] == 0
    assert again[columns].equals(first[columns])


def test_a_failed_image_is_a_row_with_its_reason(nasa_double, downloader):
    loader, _ = downloader
    pages = manifest(nasa_double, [0, 1])
    nasa_double.faults = {"by_id": {pages["nasa_id"][1]: "500"}}
    frame = loader.download({"0001": pages}, {}).frames["0001"]
    assert frame["status"].tolist() == ["stored", "failed"]
    assert "500" in frame["error"][1]
    assert pd.isna(frame["bytes"][1]) and not loader.store.exists(frame["image_key"][1])
