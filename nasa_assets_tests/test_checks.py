"""The images_complete check's own verdicts, on a real local store and hand-built tables."""

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from nasa_assets.dataset.tables import frame
from nasa_assets.defs.assets.moon_images import _completeness
from nasa_assets.storage import LocalStore

GOOD, OTHER = b"\xff\xd8good image bytes", b"\xff\xd8evil image bytes"  # same length


def _row(nasa_id, status, data=None, error=None):
    return {"nasa_id": nasa_id, "image_key": f"images/{nasa_id}.jpg", "status": status, "error": error,
            "bytes": len(data) if data is not None else None,
            "sha256": hashlib.sha256(data).hexdigest() if data is not None else None}


def _verdict(store, manifest_ids, rows, max_failed=1.0, listed=None):
    manifests = {"0001": frame("sampled_manifest", [{"nasa_id": i} for i in manifest_ids])}
    images = frame("moon_images", rows)
    with ThreadPoolExecutor(4) as pool:
        return _completeness(store, manifests, images, max_failed, listed or {}, pool)


@pytest.fixture
def store(tmp_path):
    store = LocalStore(tmp_path)
    for name in ("a", "b", "c"):
        store.put_bytes(f"images/{name}.jpg", GOOD)
    return store


def test_a_complete_page_passes(store):
    result = _verdict(store, ["a", "b", "c"], [_row(i, "stored", GOOD) for i in "abc"])
    assert result.passed and result.metadata["problems"].value == []
    assert result.metadata["hash_verified"].value == 3


def test_every_kind_of_incompleteness_is_named(store):
    store.delete("images/b.jpg")
    store.put_bytes("images/c.jpg", OTHER)  # same size, other bytes: only the hash can tell
    rows = [_row("a", "stored", GOOD), _row("b", "stored", GOOD), _row("c", "stored", GOOD),
            _row("d", "failed", error=None)]
    result = _verdict(store, ["a", "b", "c", "d", "e"], rows)
    assert not result.passed
    assert result.metadata["problems"].value == [
        "1 manifest rows have no image row, e.g. ['e']",
        "1 failed rows without a reason",
        "1 stored objects missing or of another size, e.g. ['images/b.jpg']",
        "sha256 mismatch for ['images/c.jpg']",
    ]


def test_already_stored_rows_are_checked_against_the_steps_listing(store):
    rows = [_row("a", "already_stored", GOOD), _row("b", "already_stored", GOOD)]
    listed = {"images/a.jpg": len(GOOD)}  # b was gone when the step listed storage
    result = _verdict(store, ["a", "b"], rows, listed=listed)
    assert result.metadata["problems"].value == [
        "1 stored objects missing or of another size, e.g. ['images/b.jpg']"
    ]


def test_the_failure_budget_decides_on_failed_rows_with_reasons(store):
    rows = [_row("a", "stored", GOOD), _row("b", "failed", error="HTTP 404 from the file host")]
    assert _verdict(store, ["a", "b"], rows, max_failed=0.5).passed
    result = _verdict(store, ["a", "b"], rows, max_failed=0.4)
    assert result.metadata["problems"].value == ["1 of 2 images failed (budget 40%)"]
    assert result.metadata["failed_examples"].value == [
        {"nasa_id": "b", "error": "HTTP 404 from the file host"}
    ]
    assert result.metadata["failed"].value == 1
