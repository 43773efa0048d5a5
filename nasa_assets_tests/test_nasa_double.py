"""Tests of the NASA API test double itself, through real HTTP, plus the moto fixtures."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from nasa_assets_tests.nasa_double import (
    CAP_REASON,
    DATA_DIR,
    HUGE_BYTES,
    RENDITION_DIMS,
    RENDITIONS,
    NasaDouble,
)

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Every data field seen in the recorded image and video items.
KNOWN_DATA_FIELDS = {
    "album", "center", "date_created", "description", "description_508", "keywords",
    "location", "media_type", "nasa_id", "photographer", "secondary_creator", "title",
}
REAL_IMAGE_COUNT = 28  # 20 Apollo 11 + 5 moon images + iss026-s-001 + 2 STS-65


def load(name: str):
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def search(double: NasaDouble, **params) -> requests.Response:
    return requests.get(f"{double.base_url}/search", params=params, timeout=10)


def image_url(double: NasaDouble, nasa_id: str, rendition: str) -> str:
    return f"{double.base_url}/image/{nasa_id}/{nasa_id}~{rendition}.jpg"


def ids_of(collection: dict) -> list[str]:
    return [item["data"][0]["nasa_id"] for item in collection["items"]]


def real_asset_url(url: str, double: NasaDouble) -> str:
    return re.sub(r"^https?://images-assets\.nasa\.gov", double.base_url, url)


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def test_page1_shape_matches_recorded_sample(nasa_double):
    resp = search(nasa_double, q="moon", media_type="image")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    sample = load("search-apollo11-image-page1-first20.json")

    assert body.keys() == sample.keys() == {"collection"}
    coll = body["collection"]
    assert set(coll) == set(sample["collection"])
    assert coll["version"] == "1.0"
    assert coll["href"] == "http://images-api.nasa.gov/search?q=moon&media_type=image"
    assert coll["metadata"] == {"total_hits": 250}
    assert len(coll["items"]) == 100
    assert coll["links"] == [{
        "rel": "next",
        "prompt": "Next",
        "href": f"{nasa_double.base_url}/search?q=moon&media_type=image&page=2",
    }]
    for item in coll["items"]:
        assert set(item) == {"href", "data", "links"}
        assert len(item["data"]) == 1
        data = item["data"][0]
        assert set(data) <= KNOWN_DATA_FIELDS
        assert {"nasa_id", "title", "media_type", "date_created", "center", "description"} <= set(data)
        assert data["media_type"] == "image"
        assert DATE_RE.match(data["date_created"])
        assert item["href"] == f"{nasa_double.base_url}/image/{data['nasa_id']}/collection.json"
        previews = [link for link in item["links"] if link["rel"] == "preview"]
        assert len(previews) == 1 and previews[0]["href"].endswith("~thumb.jpg")
        assert all(link["href"].startswith(nasa_double.base_url) for link in item["links"])

    # The recorded items come first, unchanged apart from the asset host.
    recorded = sample["collection"]["items"]
    for served, real in zip(coll["items"][:20], recorded):
        assert served["data"] == real["data"]
        assert served["href"] == real_asset_url(real["href"], nasa_double)
        assert [link["href"] for link in served["links"]] == [
            real_asset_url(link["href"], nasa_double) for link in real["links"]
        ]


def test_corpus_composition(nasa_double):
    corpus = nasa_double.corpus()
    ids = [item["data"][0]["nasa_id"] for item in corpus]
    assert len(ids) == len(set(ids)) == 250
    assert ids[0] == "jsc2007e034221"
    assert "PIA12235" in ids[:REAL_IMAGE_COUNT] and "iss026-s-001" in ids[:REAL_IMAGE_COUNT]
    assert ids[REAL_IMAGE_COUNT - 1] == "sts065-214-010"
    assert ids[REAL_IMAGE_COUNT:] == [f"MOON-{i:05d}" for i in range(REAL_IMAGE_COUNT, 250)]

    synthetic = corpus[REAL_IMAGE_COUNT:]
    formats = [len(item["links"]) for item in synthetic]
    assert set(formats) == {1, 5}
    assert formats[:4] == [1, 5, 1, 5]
    comma_keywords = [
        item for item in synthetic
        if len(item["data"][0].get("keywords", [])) == 1 and "," in item["data"][0]["keywords"][0]
    ]
    assert comma_keywords, "some items must carry keywords as one comma-joined string"
    assert any("keywords" not in item["data"][0] for item in synthetic)
    assert len({item["data"][0]["date_created"] for item in synthetic}) > 100


def test_v11_links_give_served_dimensions_and_sizes(nasa_double):
    item = next(i for i in nasa_double.corpus()[REAL_IMAGE_COUNT:] if len(i["links"]) == 5)
    nasa_id = item["data"][0]["nasa_id"]
    rels = {link["href"].rsplit("~", 1)[1][:-4]: link["rel"] for link in item["links"]}
    assert rels == {"orig": "canonical", "large": "alternate", "medium": "alternate",
                    "small": "alternate", "thumb": "preview"}
    for link in item["links"]:
        resp = requests.get(link["href"], timeout=10)
        assert resp.status_code == 200
        assert len(resp.content) == link["size"]
        assert Image.open(io.BytesIO(resp.content)).size == (link["width"], link["height"])
    # The recorded v1.1 item keeps its recorded (real-world) sizes.
    real = next(i for i in nasa_double.corpus() if i["data"][0]["nasa_id"] == "iss026-s-001")
    assert {link["width"] for link in real["links"]} == {640, 1280, 1920, 4000}
    assert nasa_id.startswith("MOON-")


def test_paging_follows_next_links_until_no_links_key(nasa_double):
    url = f"{nasa_double.base_url}/search?q=moon&media_type=image&page_size=100"
    pages = []
    while url:
        coll = requests.get(url, timeout=10).json()["collection"]
        pages.append(coll)
        url = next((link["href"] for link in coll.get("links", []) if link["rel"] == "next"), None)
    assert [len(p["items"]) for p in pages] == [100, 100, 50]
    assert "links" not in pages[-1]
    all_ids = [i for p in pages for i in ids_of(p)]
    assert all_ids == [item["data"][0]["nasa_id"] for item in nasa_double.corpus()]


def test_total_hits_honoured_and_changeable(nasa_double):
    nasa_double.total_hits = 7
    coll = search(nasa_double, q="moon").json()["collection"]
    assert coll["metadata"]["total_hits"] == 7
    assert len(coll["items"]) == 7 and "links" not in coll
    # Fewer hits than recorded items: the first recorded ones.
    assert ids_of(coll) == [i["nasa_id"] for i in
                            (it["data"][0] for it in load("search-apollo11-image-page1-first20.json")
                             ["collection"]["items"][:7])]
    nasa_double.total_hits = 1234
    coll = search(nasa_double, q="moon", page=13).json()["collection"]
    assert coll["metadata"]["total_hits"] == 1234
    assert ids_of(coll) == [f"MOON-{i:05d}" for i in range(1200, 1234)]


def test_a_query_of_its_own_gets_its_own_items(nasa_double):
    ids = nasa_double.add_query("mars", 130)
    assert ids[:2] == ["MARS-00000", "MARS-00001"] and len(ids) == 130
    mars = search(nasa_double, q="mars", page=2).json()["collection"]
    assert mars["metadata"]["total_hits"] == 130 and ids_of(mars) == ids[100:]
    assert set(mars["items"][0]) == {"href", "data", "links"}  # the same shapes as the main corpus
    moon = search(nasa_double, q="moon").json()["collection"]
    assert moon["metadata"]["total_hits"] == 250 and not set(ids_of(moon)) & set(ids)
    # Its files are served like any other item's.
    assert requests.get(image_url(nasa_double, "MARS-00001", "large"), timeout=10).status_code == 200


def test_page_size_and_page_past_end(nasa_double):
    coll = search(nasa_double, q="moon", page_size=7, page=2).json()["collection"]
    assert len(coll["items"]) == 7
    assert coll["links"][0]["href"].endswith("/search?q=moon&page_size=7&page=3")
    resp = search(nasa_double, q="moon", page=4)
    assert resp.status_code == 200
    coll = resp.json()["collection"]
    assert coll["items"] == [] and "links" not in coll
    assert coll["metadata"]["total_hits"] == 250


@pytest.mark.parametrize(
    ("page", "page_size", "status"),
    [(100, 100, 200), (101, 100, 400), (10000, 1, 200), (10001, 1, 400), (2, 10000, 400)],
)
def test_ten_thousand_result_cap(nasa_double, page, page_size, status):
    resp = search(nasa_double, q="moon", page=page, page_size=page_size)
    assert resp.status_code == status
    if status == 400:
        assert resp.json() == {"reason": CAP_REASON}


def test_cap_reached_through_next_links(nasa_double):
    nasa_double.total_hits = 10_050
    coll = search(nasa_double, q="moon", page=100).json()["collection"]
    assert len(coll["items"]) == 100
    resp = requests.get(coll["links"][0]["href"], timeout=10)
    assert resp.status_code == 400 and resp.json()["reason"] == CAP_REASON


@pytest.mark.parametrize("query", ["", "?", "?api_key=DEMO_KEY"])
def test_search_without_parameters_is_400_with_recorded_body(nasa_double, query):
    resp = requests.get(f"{nasa_double.base_url}/search{query}", timeout=10)
    assert resp.status_code == 400
    assert resp.content == (DATA_DIR / "error-search-no-parameters.json").read_bytes()


def test_other_media_types_have_no_hits(nasa_double):
    coll = search(nasa_double, q="moon", media_type="video").json()["collection"]
    assert coll["items"] == [] and coll["metadata"]["total_hits"] == 0 and "links" not in coll
    zero = load("search-zero-hits.json")["collection"]
    assert set(coll) == set(zero)
    coll = search(nasa_double, q="moon", media_type="video,image").json()["collection"]
    assert coll["metadata"]["total_hits"] == 250


def test_api_key_accepted_and_logged(nasa_double):
    resp = search(nasa_double, q="moon", api_key="SECRET")
    assert resp.status_code == 200
    assert nasa_double.requests == [("search", "/search?q=moon&api_key=SECRET")]
    assert "api_key=SECRET" in resp.json()["collection"]["links"][0]["href"]


# ---------------------------------------------------------------------------------------------
# File host
# ---------------------------------------------------------------------------------------------


def test_collection_json_lists_renditions_on_base_url(nasa_double):
    item = nasa_double.corpus()[0]
    nasa_id = item["data"][0]["nasa_id"]
    resp = requests.get(item["href"], timeout=10)
    assert resp.status_code == 200
    urls = resp.json()
    assert isinstance(urls, list) and all(isinstance(u, str) for u in urls)
    assert all(u.startswith(nasa_double.base_url + f"/image/{nasa_id}/") for u in urls)
    assert urls.count(f"{nasa_double.base_url}/image/{nasa_id}/{nasa_id}~orig.jpg") == 2
    assert urls[-1].endswith("/metadata.json")
    assert {u.rsplit("~", 1)[1] for u in urls[:-1]} == {f"{r}.jpg" for r in RENDITIONS}
    # Same shape as the recorded file-host listing.
    recorded = load("assets-collection-json-NHQ202401260011.json")
    assert [u.rsplit("/", 1)[1].replace("NHQ202401260011", "ID") for u in recorded] == [
        u.rsplit("/", 1)[1].replace(nasa_id, "ID") for u in urls
    ]


def test_unknown_ids_are_404(nasa_double):
    for path in ("/image/NOPE/collection.json", "/image/NOPE/NOPE~orig.jpg", "/image/NOPE/metadata.json"):
        resp = requests.get(nasa_double.base_url + path, timeout=10)
        assert resp.status_code == 404
        assert "reason" in resp.json()
    known = nasa_double.corpus()[0]["data"][0]["nasa_id"]
    assert requests.get(image_url(nasa_double, known, "huge"), timeout=10).status_code == 404
    resp = requests.get(nasa_double.base_url + "/nowhere", timeout=10)
    assert resp.status_code == 404 and resp.json() == {"reason": "Not found"}
    assert nasa_double.counts["other"] == 1


def test_metadata_json(nasa_double):
    item = nasa_double.corpus()[3]
    data = item["data"][0]
    meta = requests.get(item["href"].replace("collection.json", "metadata.json"), timeout=10).json()
    recorded = load("assets-metadata-json-NHQ202401260011.json")
    assert set(meta) <= set(recorded)
    assert meta["AVAIL:NASAID"] == data["nasa_id"]
    assert meta["AVAIL:Title"] == data["title"]
    assert meta["File:MIMEType"] == "image/jpeg"


def test_images_decode_and_match_image_bytes_for(nasa_double):
    corpus = nasa_double.corpus()
    digests = set()
    for item in (corpus[0], corpus[REAL_IMAGE_COUNT], corpus[REAL_IMAGE_COUNT + 1]):
        nasa_id = item["data"][0]["nasa_id"]
        for rendition in RENDITIONS:
            resp = requests.get(image_url(nasa_double, nasa_id, rendition), timeout=10)
            assert resp.status_code == 200
            assert resp.headers["Content-Type"] == "image/jpeg"
            assert int(resp.headers["Content-Length"]) == len(resp.content)
            image = Image.open(io.BytesIO(resp.content))
            image.load()
            assert image.format == "JPEG" and image.size == RENDITION_DIMS[rendition]
            assert resp.content == nasa_double.image_bytes_for(nasa_id, rendition)
            digests.add(hashlib.sha256(resp.content).hexdigest())
    assert len(digests) == 15
    with pytest.raises(KeyError):
        nasa_double.image_bytes_for("NOPE", "orig")


def test_images_are_deterministic_per_seed():
    with NasaDouble(total_hits=40) as a, NasaDouble(total_hits=40) as b, NasaDouble(total_hits=40, seed=1) as c:
        strip = lambda items: [(i["data"], len(i["links"])) for i in items]  # noqa: E731
        assert strip(a.corpus()) == strip(b.corpus())
        assert a.image_bytes_for("MOON-00030", "orig") == b.image_bytes_for("MOON-00030", "orig")
        assert a.image_bytes_for("MOON-00030", "orig") != c.image_bytes_for("MOON-00030", "orig")
        assert strip(a.corpus()) != strip(c.corpus())


def test_ids_with_spaces_are_served_with_literal_spaces(nasa_double):
    odd_id = "NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon"
    nasa_double.replace_item(0, odd_id)
    item = search(nasa_double, q="moon").json()["collection"]["items"][0]
    assert item["href"] == f"{nasa_double.base_url}/image/{odd_id}/collection.json"
    urls = requests.get(item["href"], timeout=10).json()
    assert f"{nasa_double.base_url}/image/{odd_id}/{odd_id}~orig.jpg" in urls
    resp = requests.get(image_url(nasa_double, odd_id, "thumb"), timeout=10)
    assert resp.status_code == 200
    assert resp.content == nasa_double.image_bytes_for(odd_id, "thumb")
    assert "%20" in nasa_double.requests[-1][1]


def test_padded_images_are_about_the_requested_size(nasa_double):
    nasa_double.image_bytes = 300_000
    nasa_id = nasa_double.corpus()[REAL_IMAGE_COUNT + 1]["data"][0]["nasa_id"]
    for rendition in ("orig", "thumb"):
        resp = requests.get(image_url(nasa_double, nasa_id, rendition), timeout=10)
        assert abs(len(resp.content) - 300_000) <= 8
        image = Image.open(io.BytesIO(resp.content))
        image.load()
        assert image.size == RENDITION_DIMS[rendition]
        assert resp.content == nasa_double.image_bytes_for(nasa_id, rendition)
    sizes = {link["size"] for link in nasa_double.corpus()[REAL_IMAGE_COUNT + 1]["links"]}
    assert all(abs(size - 300_000) <= 8 for size in sizes)


def test_padding_is_exact_even_for_awkward_sizes(nasa_double):
    nasa_id = "MOON-00029"
    base = len(nasa_double.image_bytes_for(nasa_id, "small"))
    # Remainders of 1-3 bytes past a full 65537-byte COM segment cannot be a segment of their own;
    # below one segment they are dropped (the target is "about"), above it they are split.
    for extra in (1, 3, 4, 65537, 65537 + 1, 65537 + 3, 2 * 65537 + 2):
        nasa_double.image_bytes = base + extra
        body = nasa_double.image_bytes_for(nasa_id, "small")
        assert len(body) == (base if extra < 4 else base + extra)
        link = next(lk for lk in nasa_double.corpus()[29]["links"] if lk["href"].endswith("~small.jpg"))
        assert link["size"] == len(body)
        image = Image.open(io.BytesIO(body))
        image.load()
        assert image.size == RENDITION_DIMS["small"]


def test_concurrent_requests_are_served_in_parallel(nasa_double):
    from concurrent.futures import ThreadPoolExecutor

    nasa_double.delay = 0.3
    urls = [item["links"][0]["href"] for item in nasa_double.corpus()[:32]]
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda u: requests.get(u, timeout=10).status_code, urls))
    assert statuses == [200] * 32
    assert nasa_double.counts["image"] == 32
    # Served side by side, not one after another: many requests were inside the delay together.
    assert nasa_double.max_concurrent >= 16


def test_large_padded_image_streams(nasa_double):
    nasa_double.image_bytes = 60_000_000
    nasa_id = nasa_double.corpus()[0]["data"][0]["nasa_id"]
    digest = hashlib.sha256()
    received = 0
    with requests.get(image_url(nasa_double, nasa_id, "orig"), stream=True, timeout=30) as resp:
        assert int(resp.headers["Content-Length"]) == 60_000_000
        head = b""
        for chunk in resp.iter_content(1 << 20):
            head = head or chunk[:2]
            digest.update(chunk)
            received += len(chunk)
    assert received == 60_000_000 and head == b"\xff\xd8"
    assert digest.hexdigest() == hashlib.sha256(nasa_double.image_bytes_for(nasa_id, "orig")).hexdigest()


def test_head_on_image_sends_headers_only(nasa_double):
    nasa_id = nasa_double.corpus()[0]["data"][0]["nasa_id"]
    resp = requests.head(image_url(nasa_double, nasa_id, "orig"), timeout=10)
    assert resp.status_code == 200 and resp.content == b""
    assert int(resp.headers["Content-Length"]) == len(nasa_double.image_bytes_for(nasa_id, "orig"))
    assert nasa_double.counts["image"] == 1


def test_keep_alive_serves_several_requests_on_one_connection(nasa_double):
    conn = http.client.HTTPConnection("127.0.0.1", int(nasa_double.host.rsplit(":", 1)[1]), timeout=10)
    try:
        for path in ("/search?q=moon", "/image/PIA12235/PIA12235~thumb.jpg", "/image/PIA12235/collection.json"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.version == 11
            assert len(resp.read()) == int(resp.getheader("Content-Length"))
        assert len(nasa_double._connections) == 1
    finally:
        conn.close()


def test_stop_refuses_new_connections():
    double = NasaDouble(total_hits=3).start()
    url = double.base_url
    assert search(double, q="x").status_code == 200
    double.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/search?q=x", timeout=5)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


def fault_target(double: NasaDouble, kind: str) -> str:
    item = double.corpus()[REAL_IMAGE_COUNT]
    if kind == "search":
        return f"{double.base_url}/search?q=moon"
    if kind == "collection":
        return item["href"]
    return item["links"][0]["href"]


@pytest.mark.parametrize("kind", ["search", "collection", "image"])
@pytest.mark.parametrize("fault", ["429", "500", "502", "503"])
def test_status_faults_are_consumed_in_order(nasa_double, kind, fault):
    nasa_double.faults[kind] = [fault]
    url = fault_target(nasa_double, kind)
    resp = requests.get(url, timeout=10)
    assert resp.status_code == int(fault)
    assert "reason" in resp.json()
    if fault == "429":
        assert resp.headers["Retry-After"] == "1"
    assert requests.get(url, timeout=10).status_code == 200
    assert nasa_double.faults[kind] == []


def test_fault_queue_is_fifo_and_none_means_no_fault(nasa_double):
    nasa_double.faults = {"search": ["500", None, "503"]}
    statuses = [search(nasa_double, q="moon").status_code for _ in range(4)]
    assert statuses == [500, 200, 503, 200]


def test_by_id_fault_is_persistent_and_only_for_that_id(nasa_double):
    victim, bystander = (i["data"][0]["nasa_id"] for i in nasa_double.corpus()[:2])
    nasa_double.faults["by_id"][victim] = "503"
    for _ in range(3):
        assert requests.get(image_url(nasa_double, victim, "orig"), timeout=10).status_code == 503
    assert requests.get(image_url(nasa_double, victim, "thumb"), timeout=10).status_code == 503
    assert requests.get(image_url(nasa_double, bystander, "orig"), timeout=10).status_code == 200
    assert requests.get(f"{nasa_double.base_url}/image/{victim}/collection.json", timeout=10).status_code == 200


@pytest.mark.parametrize("kind", ["search", "image"])
def test_reset_fault_drops_the_connection(nasa_double, kind):
    nasa_double.faults[kind] = ["reset"]
    with pytest.raises(requests.ConnectionError):
        requests.get(fault_target(nasa_double, kind), timeout=10)
    assert requests.get(fault_target(nasa_double, kind), timeout=10).status_code == 200


@pytest.mark.parametrize("kind", ["search", "collection", "image"])
def test_truncate_fault_sends_half_the_body(nasa_double, kind):
    nasa_double.image_bytes = 200_000
    nasa_double.faults[kind] = ["truncate"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(fault_target(nasa_double, kind), timeout=10)
    assert requests.get(fault_target(nasa_double, kind), timeout=10).status_code == 200


def test_slow_fault_delays_then_answers(nasa_double):
    nasa_double.faults["image"] = ["slow:0.4"]
    url = fault_target(nasa_double, "image")
    started = time.monotonic()
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and time.monotonic() - started >= 0.4
    with pytest.raises(requests.Timeout):
        nasa_double.faults["image"] = ["slow:1.0"]
        requests.get(url, timeout=0.2)


def test_always_fault_is_an_outage_until_faults_are_set_again(nasa_double):
    nasa_double.faults = {"always": {"image": "503"}}
    for _ in range(3):
        assert requests.get(fault_target(nasa_double, "image"), timeout=10).status_code == 503
    assert requests.get(fault_target(nasa_double, "collection"), timeout=10).status_code == 200
    nasa_double.configure(faults={})
    assert requests.get(fault_target(nasa_double, "image"), timeout=10).status_code == 200


def test_empty_fault_answers_a_search_page_without_its_items(nasa_double):
    nasa_double.faults = {"search": ["empty"]}
    body = search(nasa_double, q="moon", media_type="image", page=2).json()["collection"]
    assert body["items"] == [] and body["metadata"]["total_hits"] == 250
    again = search(nasa_double, q="moon", media_type="image", page=2).json()["collection"]
    assert len(again["items"]) == 100


def test_trickle_fault_sends_the_whole_body_slowly_with_an_honest_length(nasa_double):
    nasa_double.image_bytes = 4_000
    nasa_double.faults["image"] = ["trickle:1"]
    url = fault_target(nasa_double, "image")
    with requests.get(url, stream=True, timeout=(5, 3)) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Length"] == "4000"
        started = time.monotonic()
        first = resp.raw.read(1)
        # One byte a second: each read gets bytes well within the read timeout, never the body.
        assert first and time.monotonic() - started < 3
    # The whole body, byte for byte. Unpadded, the image is one chunk, and the double sends at
    # most one slice of a chunk a second, so the padded 4000 bytes (three chunks) would take 3 s.
    nasa_double.image_bytes = None
    plain = requests.get(url, timeout=10).content
    nasa_double.faults["image"] = ["trickle:1000000"]
    trickled = requests.get(url, timeout=10)
    assert trickled.content == plain and trickled.headers["Content-Length"] == str(len(plain))
    assert nasa_double.faults["image"] == []  # the trickle was served, not skipped


def test_html_fault_lies_about_content_type(nasa_double):
    nasa_double.faults["image"] = ["html"]
    resp = requests.get(fault_target(nasa_double, "image"), timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/jpeg"
    assert resp.content.lstrip().lower().startswith(b"<!doctype html")
    with pytest.raises(Exception):
        Image.open(io.BytesIO(resp.content))
    nasa_double.faults["search"] = ["html"]
    resp = search(nasa_double, q="moon")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        resp.json()


def test_bomb_fault_is_a_small_png_declaring_huge_dimensions(nasa_double):
    nasa_double.faults["image"] = ["bomb"]
    resp = requests.get(fault_target(nasa_double, "image"), timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert len(resp.content) < 10_000
    assert resp.content[:8] == b"\x89PNG\r\n\x1a\n" and resp.content[12:16] == b"IHDR"
    assert struct.unpack(">II", resp.content[16:24]) == (50_000, 50_000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(resp.content))


def test_huge_fault_streams_until_the_client_gives_up(nasa_double):
    nasa_double.faults["image"] = ["huge"]
    with requests.get(fault_target(nasa_double, "image"), stream=True, timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/jpeg"
        assert int(resp.headers["Content-Length"]) >= HUGE_BYTES
        received = b""
        for chunk in resp.iter_content(1 << 16):
            received += chunk
            if len(received) >= 3_000_000:
                break
    assert received[:2] == b"\xff\xd8"
    # The server shrugs off the aborted download.
    assert requests.get(fault_target(nasa_double, "image"), timeout=10).status_code == 200


def test_redirect_fault(nasa_double):
    target = f"{nasa_double.base_url}/image/PIA12235/PIA12235~orig.jpg"
    nasa_double.faults["image"] = [f"redirect:{target}"]
    resp = requests.get(fault_target(nasa_double, "image"), allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"] == target
    nasa_double.faults["image"] = ["redirect:http://evil.example/x.jpg"]
    resp = requests.get(fault_target(nasa_double, "image"), allow_redirects=False, timeout=10)
    assert resp.headers["Location"] == "http://evil.example/x.jpg"


def test_unknown_fault_is_a_loud_500(nasa_double):
    nasa_double.faults["search"] = ["nonsense"]
    resp = search(nasa_double, q="moon")
    assert resp.status_code == 500 and "nonsense" in resp.json()["reason"]


def test_delay_applies_to_every_request(nasa_double):
    nasa_double.delay = 0.2
    started = time.monotonic()
    search(nasa_double, q="moon")
    requests.get(fault_target(nasa_double, "image"), timeout=10)
    assert time.monotonic() - started >= 0.4


# ---------------------------------------------------------------------------------------------
# Counting and corpus changes
# ---------------------------------------------------------------------------------------------


def test_counts_and_request_log(nasa_double):
    item = nasa_double.corpus()[0]
    search(nasa_double, q="moon")
    requests.get(item["href"], timeout=10)
    requests.get(item["links"][0]["href"], timeout=10)
    requests.get(item["links"][0]["href"], timeout=10)
    requests.get(nasa_double.base_url + "/favicon.ico", timeout=10)
    requests.get(nasa_double.base_url + "/__double__/stats", timeout=10)
    assert nasa_double.counts == {"search": 1, "collection": 1, "image": 2, "other": 1}
    assert [kind for kind, _ in nasa_double.requests] == ["search", "collection", "image", "image", "other"]
    assert nasa_double.requests[-1] == ("other", "/favicon.ico")
    nasa_double.reset_counts()
    assert nasa_double.counts == {} and nasa_double.requests == []


def test_replace_item_changes_the_page(nasa_double):
    before = search(nasa_double, q="moon", page=2).json()["collection"]
    old_id = ids_of(before)[5]
    nasa_double.replace_item(105, "MOON-REPLACED-1")
    after = search(nasa_double, q="moon", page=2).json()["collection"]
    assert ids_of(after)[5] == "MOON-REPLACED-1"
    assert ids_of(after)[:5] + ids_of(after)[6:] == ids_of(before)[:5] + ids_of(before)[6:]
    assert after["items"][5] != before["items"][5]
    assert after["metadata"]["total_hits"] == 250
    # Assets that left the results stay on the file host, as they do for real.
    assert requests.get(image_url(nasa_double, old_id, "orig"), timeout=10).status_code == 200
    assert requests.get(image_url(nasa_double, "MOON-REPLACED-1", "orig"), timeout=10).status_code == 200
    with pytest.raises(IndexError):
        nasa_double.replace_item(250, "X")


def test_insert_items_shifts_pages(nasa_double):
    before = [ids_of(search(nasa_double, q="moon", page=p).json()["collection"]) for p in (1, 2)]
    nasa_double.insert_items(3, at=0)
    after = [ids_of(search(nasa_double, q="moon", page=p).json()["collection"]) for p in (1, 2)]
    assert after[0][:3] == ["MOON-NEW-00000", "MOON-NEW-00001", "MOON-NEW-00002"]
    assert after[0][3:] == before[0][:97]
    assert after[1][:3] == before[0][97:]
    assert nasa_double.total_hits == 253
    nasa_double.insert_items(1, at=250)
    assert nasa_double.corpus()[250]["data"][0]["nasa_id"] == "MOON-NEW-00003"
    resp = requests.get(image_url(nasa_double, "MOON-NEW-00003", "thumb"), timeout=10)
    assert resp.content == nasa_double.image_bytes_for("MOON-NEW-00003", "thumb")


def test_http_control_surface(nasa_double):
    base = nasa_double.base_url + "/__double__"
    search(nasa_double, q="moon")
    stats = requests.get(f"{base}/stats", timeout=10).json()
    assert stats["counts"] == {"search": 1} and stats["total_hits"] == 250

    config = {"total_hits": 40, "image_bytes": 50_000, "delay": 0.0, "faults": {"search": ["503"]}}
    assert requests.post(f"{base}/config", json=config, timeout=10).status_code == 200
    assert nasa_double.total_hits == 40 and nasa_double.image_bytes == 50_000
    assert search(nasa_double, q="moon").status_code == 503
    assert search(nasa_double, q="moon").json()["collection"]["metadata"]["total_hits"] == 40

    assert requests.post(f"{base}/insert_items", json={"count": 2, "at": 1}, timeout=10).ok
    assert requests.post(f"{base}/replace_item", json={"position": 0, "nasa_id": "CTL-1"}, timeout=10).ok
    ids = ids_of(search(nasa_double, q="moon").json()["collection"])
    assert ids[:3] == ["CTL-1", "MOON-NEW-00000", "MOON-NEW-00001"] and len(ids) == 42

    stats = requests.post(f"{base}/reset_counts", timeout=10).json()
    assert stats["counts"] == {} and nasa_double.counts == {}
    assert requests.post(f"{base}/config", json={"image_bytes": None}, timeout=10).ok
    assert nasa_double.image_bytes is None

    assert requests.post(f"{base}/config", json={"bogus": 1}, timeout=10).status_code == 400
    assert requests.post(f"{base}/config", data="not json", timeout=10).status_code == 400
    assert requests.post(f"{base}/replace_item", json={"position": 999, "nasa_id": "x"}, timeout=10).status_code == 400
    assert requests.get(f"{base}/nope", timeout=10).status_code == 404
    assert nasa_double.counts == {}


def test_command_line_runs_until_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasa_assets_tests.nasa_double", "--port", "0", "--total-hits", "12"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"NASA double listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        base_url = match.group(1)
        coll = requests.get(f"{base_url}/search?q=moon", timeout=10).json()["collection"]
        assert coll["metadata"]["total_hits"] == 12
        assert requests.get(coll["items"][0]["links"][0]["href"], timeout=10).status_code == 200
        stats = requests.get(f"{base_url}/__double__/stats", timeout=10).json()
        assert stats["counts"] == {"search": 1, "image": 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def test_environment_is_isolated():
    import os

    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    for name in ("AWS_PROFILE", "S3_BUCKET_NAME", "NASA_API_KEY", "AWS_ENDPOINT_URL"):
        assert name not in os.environ


def test_moto_s3_fixtures(s3_server, s3_client, s3_bucket):
    assert s3_server.startswith("http://127.0.0.1:")
    assert s3_bucket.startswith("nasa-test-")
    s3_client.put_object(Bucket=s3_bucket, Key="images/a.jpg", Body=b"jpeg-bytes")
    assert s3_client.get_object(Bucket=s3_bucket, Key="images/a.jpg")["Body"].read() == b"jpeg-bytes"
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)
    assert [obj["Key"] for obj in listed["Contents"]] == ["images/a.jpg"]


def test_each_test_gets_a_fresh_bucket(s3_client, s3_bucket):
    assert s3_client.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
