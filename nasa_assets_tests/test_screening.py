"""Screening of hostile or broken search answers: every field and URL of a response is untrusted.

Broken items are rejected (or their text normalised) with a recorded reason while the rest of the
page proceeds; odd nasa_ids map to keys inside images/ that never collide; only http(s) URLs on
NASA_ALLOWED_HOSTS are fetched, and a trap server standing in for every forbidden target proves it
by receiving no request at all; oversized, non-image and bomb files become failed rows
(test_redirects.py covers redirects, test_imaging_storage.py the flat memory of a stream cut short). Property tests cover the screening and key mapping
for arbitrary JSON (test_properties.py covers the parser, safe_name and url_block_reason)."""

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasa_assets.dataset import manifest, tables
from nasa_assets.dataset.keys import image_key
from nasa_assets.dataset.validation import manifest_problems
from nasa_assets.nasa.parsing import parse_items
from nasa_assets.nasa.renditions import renditions_from_urls
from nasa_assets.nasa.urls import parse_allowed_hosts, redact, url_block_reason
from nasa_assets.storage import LocalStore, S3Store
from nasa_assets_tests.helpers import assert_image_matches, local_env, materialize_pages, read_table


MB = 1 << 20
ASSETS = "https://images-assets.nasa.gov"  # the double serves these hrefs itself
RENDITION_SIZES = {"orig": (320, 240), "large": (160, 120), "medium": (96, 72), "small": (64, 48),
                   "thumb": (32, 24)}


# --- a server that must never be reached ---------------------------------------------------------


# --- hostile items ---------------------------------------------------------------------------------


def good_data(nasa_id, **fields) -> dict:
    return {"nasa_id": nasa_id, "title": "Hostile but valid", "media_type": "image",
            "date_created": "2019-07-20T00:00:00Z", "center": "HQ", "keywords": ["Moon"]} | fields


def v11_item(nasa_id, folder: str | None = None, **fields) -> dict:
    """An item in link format 1.1: every rendition listed with its size, no collection.json needed."""
    q = quote(str(nasa_id), safe="")
    folder = folder or f"{ASSETS}/image/{q}"
    links = [{"href": f"{folder}/{q}~{r}.jpg", "rel": "alternate", "render": "image", "width": w,
              "height": h, "size": 1000} for r, (w, h) in RENDITION_SIZES.items()]
    return {"href": f"{ASSETS}/image/{q}/collection.json", "data": [good_data(nasa_id, **fields)],
            "links": links}


def v10_item(nasa_id, href: str) -> dict:
    """An item in link format 1.0: only a thumbnail link; the renditions come from `href`."""
    q = quote(nasa_id, safe="")
    return {"href": href, "data": [good_data(nasa_id)],
            "links": [{"href": f"{ASSETS}/image/{q}/{q}~thumb.jpg", "rel": "preview", "render": "image"}]}


ODD_IDS = ["../../etc/passwd", "a b c", "with/slash", "with_slash", "with%2Fslash", "100%moon",
           ".hidden", "ünïcødé 月", "back\\slash", "DUP-ACROSS"]


def page_one(trap) -> tuple[list, dict[int, str]]:
    """Hostile items for positions 0.. of page 1, and the reason expected for each rejected one."""
    no_id = v11_item("x")
    del no_id["data"][0]["nasa_id"]
    items = [
        {"href": f"{ASSETS}/image/empty/collection.json", "data": [], "links": []},
        no_id,
        v11_item("BAD-DATE", date_created="20th of July, 1969"),
        v11_item("A-VIDEO", media_type="video"),
        v11_item("DUP-IN-PAGE"),
        v11_item("DUP-IN-PAGE", title="the second copy"),
        v11_item("CTRL\x07ID\x00"),
        v11_item("L" * 600),
        "not an item",
        None,
        v11_item("FILE-LINKS", folder="file:///etc"),
        v11_item("METADATA-LINKS", folder="http://169.254.169.254/latest/meta-data"),
        v11_item("PRIVATE-LINKS", folder="http://10.0.0.1/image"),
        v11_item("TRAP-LINKS", folder=f"{trap.url}/image"),
        v10_item("TRAP-COLLECTION", f"{trap.url}/image/TRAP-COLLECTION/collection.json"),
        v10_item("FILE-COLLECTION", "file:///etc/passwd"),
        v10_item("TRAP-IN-COLLECTION", f"{ASSETS}/image/TRAP-IN-COLLECTION/collection.json"),
        v11_item("CONTROL-TITLE", title="Moon\x00rise \x1b[31mred\x1b[0m\x7f"),
        v11_item("LONG-TEXT", title="T" * 5000, description="D" * 50_000),
    ] + [v11_item(i) for i in ODD_IDS]
    rejected = {
        0: "item has no data object",
        1: "missing nasa_id",
        2: "unparsable date_created: '20th of July, 1969'",
        3: "media_type is not image: 'video'",
        5: "duplicate nasa_id on this page",
        6: "nasa_id has control characters or surrounding whitespace",
        7: "nasa_id too long (600 characters, at most 500)",
        8: "item has no data object",
        9: "item has no data object",
        10: "image URL refused: scheme 'file' is not http(s)",
        11: "image URL refused: host 169.254.169.254:80 is not in NASA_ALLOWED_HOSTS",
        12: "image URL refused: host 10.0.0.1:80 is not in NASA_ALLOWED_HOSTS",
        13: f"image URL refused: host {trap.host} is not in NASA_ALLOWED_HOSTS",
        14: f"collection.json: refused {trap.url}/image/TRAP-COLLECTION/collection.json: "
            f"host {trap.host} is not in NASA_ALLOWED_HOSTS",
        15: "collection.json: refused file:///etc/passwd: scheme 'file' is not http(s)",
        16: f"image URL refused: host {trap.host} is not in NASA_ALLOWED_HOSTS",
    }
    return items, rejected


def test_hostile_pages(tmp_path, nasa_double, trap):
    items, expected_rejections = page_one(trap)
    nasa_double.put_raw_items(0, items)
    nasa_double.put_raw_items(150, [v11_item("DUP-ACROSS")])  # also on page 2
    nasa_double.set_collection(
        "TRAP-IN-COLLECTION", [f"{trap.url}/image/x/x~{r}.jpg" for r in RENDITION_SIZES]
        + ["file:///etc/passwd~orig.jpg", f"{ASSETS}/image/x/metadata.json"])
    corpus_ids = {i: item["data"][0].get("nasa_id") for i, item in enumerate(nasa_double.corpus())
                  if isinstance(item, dict) and item.get("data")}
    faults = {60: "huge", 61: "html", 62: "bomb", 63: f"redirect:{trap.url}/x~large.jpg",
              64: "redirect:file:///etc/passwd", 65: "redirect:http://169.254.169.254/latest/meta-data/"}
    nasa_double.faults = {"by_id": {corpus_ids[p]: f for p, f in faults.items()}}
    root = tmp_path / "dataset"
    env = local_env(nasa_double, root, MAX_FAILED_FRACTION="0.1")  # 6 deliberate failures of 84

    result = materialize_pages(env, "0001", "0002")
    assert result.success

    # Nothing reached the forbidden server: not a link, a collection.json, an entry, a redirect.
    assert trap.requests == []

    # Rejected items: each with its reason, in the table and in the metadata; the page went on.
    rejected = read_table((root / "rejected/0001.parquet").read_bytes())
    got = {int(r["position"]) - 1: r["reason"] for r in rejected.to_dict("records")}
    assert got == expected_rejections
    assert rejected.loc[rejected["position"] == 6, "nasa_id"].item() == "DUP-IN-PAGE"
    assert pd.isna(rejected["nasa_id"].iloc[1])  # the item without one
    assert len(read_table((root / "rejected/0002.parquet").read_bytes())) == 0
    meta = {}  # by asset, then page: a range run records each page's own figures
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        meta.setdefault(name, {})[materialization.partition] = materialization.metadata
    sm = meta["sampled_manifest"]["0001"]
    assert sm["rejected"].value == len(expected_rejections)
    assert meta["sampled_manifest"]["0002"]["rejected"].value == 0
    reasons = sm["rejected_reasons"].value
    assert reasons["item has no data object"] == 3 and reasons["image URL refused"] == 5
    assert sm["normalised"].value == {"title: control characters removed": 1,
                                      "title: cut at its length limit": 1,
                                      "description: cut at its length limit": 1}

    # Normalised, not rejected: the cleaned text is stored, the raw JSON keeps the original.
    search = read_table((root / "search_results/0001.parquet").read_bytes()).set_index("nasa_id")
    assert search.loc["CONTROL-TITLE", "title"] == "Moonrise [31mred[0m"
    assert "\\u0000" in search.loc["CONTROL-TITLE", "raw"]
    assert len(search.loc["LONG-TEXT", "title"]) == 1000
    assert len(search.loc["LONG-TEXT", "description"]) == 10_000

    images = pd.concat([read_table((root / f"moon_images/{p}.parquet").read_bytes())
                        for p in ("0001", "0002")], ignore_index=True)
    page1 = images.iloc[: 100 - len(expected_rejections)].set_index("nasa_id")

    # Odd nasa_ids: stored, keys inside images/, all distinct, files inside the root.
    keys = {i: page1.loc[i, "image_key"] for i in ODD_IDS}
    assert len(set(keys.values())) == len(ODD_IDS)
    # A plain id keeps a readable key; lower-case letters add the hash of the exact spelling.
    assert keys["with_slash"] == f"images/with_slash~{hashlib.sha256(b'with_slash').hexdigest()[:24]}.jpg"
    images_dir = (root / "images").resolve()
    for nasa_id, key in keys.items():
        row = page1.loc[nasa_id]
        assert row["status"] == "stored", (nasa_id, row["error"])
        assert key.startswith("images/") and key.count("/") == 1 and ".." not in key
        path = (root / key).resolve()
        assert path.parent == images_dir
        assert row["image_uri"] == path.as_uri()
        assert_image_matches(path.read_bytes(), row)
        served = nasa_double.image_bytes_for(nasa_id, "large")
        assert hashlib.sha256(served).hexdigest() == row["sha256"]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in tmp_path.rglob("*") if p.is_file())
    assert not (tmp_path / "etc").exists() and not (root / "etc").exists()

    # A nasa_id on two pages: one object, both rows describe it.
    both = images[images["nasa_id"] == "DUP-ACROSS"]
    assert len(both) == 2 and both["image_key"].nunique() == 1 and both["sha256"].nunique() == 1
    assert sorted(both["status"]) == ["already_stored", "stored"]
    assert sum(p.name.startswith("DUP-ACROSS") for p in (root / "images").iterdir()) == 1
    # ... and one transfer: the second page's row waits for the first page's download.
    assert sum(kind == "image" and "DUP-ACROSS" in path for kind, path in nasa_double.requests) == 1

    # Files: too large, not an image, a bomb, redirects off the allowed hosts -> failed, with reasons.
    failed = {corpus_ids[p]: page1.loc[corpus_ids[p]] for p in faults}
    errors = {faults[p]: failed[corpus_ids[p]]["error"] for p in faults}
    assert errors["huge"].startswith("larger than MAX_IMAGE_BYTES (")
    assert errors["html"] == "not a decodable image"
    assert errors["bomb"] == "declares more than 200000000 pixels (decompression bomb)"
    assert errors[f"redirect:{trap.url}/x~large.jpg"] == (
        f"refused {trap.url}/x~large.jpg: host {trap.host} is not in NASA_ALLOWED_HOSTS")
    assert errors["redirect:file:///etc/passwd"] == "refused file:///etc/passwd: scheme 'file' is not http(s)"
    assert errors["redirect:http://169.254.169.254/latest/meta-data/"] == (
        "refused http://169.254.169.254/latest/meta-data/: host 169.254.169.254:80 is not in NASA_ALLOWED_HOSTS")
    for row in failed.values():
        assert row["status"] == "failed" and pd.isna(row["sha256"])
        assert not (root / row["image_key"]).exists()
    assert (page1["status"] == "failed").sum() == len(faults)
    assert set(page1["status"]) == {"stored", "failed"}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["manifest_valid"].passed and checks["images_complete"].passed
    assert checks["images_complete"].metadata["failed"].value == len(faults)


def test_a_cross_page_duplicate_does_not_fail_the_manifest_invariants():
    rows = [parse_items([v11_item("SAME")], page)[0] for page in (1, 2)]
    valid = [manifest.attach_image(r, manifest.listed_renditions(r), "large",
                                   parse_allowed_hosts("images-assets.nasa.gov"))[0] for r in rows]
    frame = tables.frame("sampled_manifest", valid)
    assert manifest_problems(frame, parse_allowed_hosts("images-assets.nasa.gov")) == []
    twice_on_one_page = tables.frame("sampled_manifest", [valid[0], valid[0]])
    assert manifest_problems(twice_on_one_page, parse_allowed_hosts("images-assets.nasa.gov")) == [
        "duplicate nasa_id: ['SAME']"]


# --- the client refuses before it connects ---------------------------------------------------------


# --- size cap while streaming, memory flat ---------------------------------------------------------


# --- properties for arbitrary input ---------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20,
)
hrefs = st.sampled_from([
    "https://images-assets.nasa.gov/image/a/a~large.jpg", "http://images-assets.nasa.gov/x~orig.tif",
    "file:///etc/passwd~large.jpg", "http://169.254.169.254/x~small.png", "//evil/x~thumb.jpg",
    "https://images-assets.nasa.gov:8443/x~medium.jpg", "https://user@images-assets.nasa.gov/x~large.jpg",
]) | st.text(max_size=40)
data_fields = st.fixed_dictionaries({}, optional={
    "nasa_id": st.sampled_from(["A", "A ", "../x", "A\x00", "B"]) | st.text(max_size=20) | json_values,
    "title": st.text(max_size=20) | json_values,
    "media_type": st.sampled_from(["image", "video", "IMAGE"]) | json_values,
    "date_created": st.sampled_from(["2019-07-20T00:00:00Z", "2019-07-20", "1800-01-01", "bad"]) | json_values,
    "description": st.text(max_size=50) | json_values,
})
hostile_items = json_values | st.builds(
    lambda data, links, href: {"data": data, "links": links, "href": href},
    data=st.lists(data_fields, max_size=2) | json_values,
    links=st.lists(st.fixed_dictionaries({"href": hrefs}, optional={
        "render": st.just("image") | json_values, "size": st.integers(), "rel": st.text(max_size=8)}),
        max_size=6) | json_values,
    href=hrefs | json_values,
)
ALLOWED = parse_allowed_hosts("images-assets.nasa.gov")
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROPS
@given(st.lists(hostile_items, max_size=12))
def test_screening_a_page_of_arbitrary_json_never_raises_and_accounts_for_every_item(items):
    rows = parse_items(items, 3)
    valid, rejected = manifest.screen(rows)
    assert len(valid) + len(rejected) == len(rows)
    assert all(isinstance(r["reason"], str) and r["reason"] for r in rejected)
    ids = [r["nasa_id"] for r in valid]
    assert len(ids) == len(set(ids)) and all(isinstance(i, str) and i for i in ids)
    assert all(r["media_type"] == "image" for r in valid)
    manifest.normalisation_counts(rows)
    tables.frame("rejected", rejected)

    kept = []
    for row in valid:
        renditions = manifest.listed_renditions(row) or manifest.renditions_from_links(
            [{"href": h, "render": "image"} for h in ["https://images-assets.nasa.gov/x~large.jpg"]])
        entry, reason = manifest.attach_image(row, renditions, "large", ALLOWED)
        assert (entry is None) != (reason is None)
        if entry:
            assert url_block_reason(entry["image_url"], ALLOWED) is None
            assert entry["image_key"].startswith("images/") and entry["image_key"].count("/") == 1
            kept.append(entry)
    assert manifest_problems(tables.frame("sampled_manifest", kept), ALLOWED) == []


any_id = st.text(st.characters(codec="utf-8"), min_size=1, max_size=200)


@PROPS
@given(st.lists(any_id, min_size=2, max_size=8, unique=True), hrefs)
def test_image_keys_stay_inside_images_and_never_collide_on_disk_or_in_s3(tmp_path_factory, ids, url):
    root = tmp_path_factory.getbasetemp() / "keys-root"
    store = LocalStore(root)
    s3 = S3Store(None, "bucket", "moon_dataset")
    keys = [image_key(i, url) for i in ids]
    paths = {Path(store.uri(k).removeprefix("file://")) for k in keys}
    assert len(paths) == len(ids)  # distinct ids, distinct files
    assert all(p.parent == store.root / "images" for p in paths)
    assert len({s3.uri(k) for k in keys}) == len(ids)
    assert all(s3.uri(k).startswith("s3://bucket/moon_dataset/images/") for k in keys)


@PROPS
@given(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=30), hrefs,
       st.sampled_from(["api_key", "API_KEY", "token", "X-Amz-Signature"]))
def test_redact_never_shows_a_secret_query_value(secret, base, name):
    url = f"{base}?q=moon&{name}={secret}&page=2"
    shown = redact(url)
    assert secret not in shown or secret in base


def test_an_unparsable_url_in_a_listing_is_skipped_not_a_crash(tmp_path, nasa_double):
    """`http://[broken/...` makes urlsplit raise; the URL is ignored and the item proceeds."""
    assert renditions_from_urls(["http://[broken/x~large.jpg", "https://h:99999/x~medium.jpg",
                                 f"{ASSETS}/i/x~small.jpg"]) == {
        "small": f"{ASSETS}/i/x~small.jpg"
    }
    v10 = [item for item in nasa_double.corpus() if manifest.listed_renditions({"raw": json.dumps(item)}) is None]
    fixed, broken_only = v10[0]["data"][0]["nasa_id"], v10[1]["data"][0]["nasa_id"]
    urls = requests.get(v10[0]["href"], timeout=10).json()
    nasa_double.set_collection(fixed, ["http://[broken/x~large.jpg", *urls])
    nasa_double.set_collection(broken_only, ["http://[broken/y~large.jpg", "http://[::1/y~orig.jpg"])

    result = materialize_pages(local_env(nasa_double, tmp_path), "0001")
    assert result.success
    kept = read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes()).set_index("nasa_id")
    assert kept.loc[fixed, "image_url"] in urls and kept.loc[fixed, "rendition"] == "large"
    rejected = read_table((tmp_path / "rejected/0001.parquet").read_bytes()).set_index("nasa_id")
    assert rejected.loc[broken_only, "reason"] == "no image rendition available"
