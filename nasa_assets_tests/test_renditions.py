"""Rendition discovery from item links (formats 1.0 and 1.1) and collection.json, and the choice."""

import json
from pathlib import Path

import pytest

from nasa_assets.nasa.renditions import (
    RENDITIONS,
    choose_rendition,
    links_list_all_renditions,
    rendition_of,
    renditions_from_links,
    renditions_from_urls,
)

DATA = Path(__file__).parent / "data"
ISS = "https://images-assets.nasa.gov/image/iss026-s-001/iss026-s-001"
NHQ = "http://images-assets.nasa.gov/image/NHQ202401260011/NHQ202401260011"


def load(name: str):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_v11_links_list_all_five_renditions():
    links = load("search-nasa_id-iss026-s-001-v1.1.json")["collection"]["items"][0]["links"]
    assert links_list_all_renditions(links) is True
    assert renditions_from_links(links) == {
        "orig": f"{ISS}~orig.jpg",
        "large": f"{ISS}~large.jpg",
        "medium": f"{ISS}~medium.jpg",
        "small": f"{ISS}~small.jpg",
        "thumb": f"{ISS}~thumb.jpg",
    }


def test_v10_image_links_give_only_the_thumb():
    links = load("search-moon-page1.json")["collection"]["items"][2]["links"]  # PIA12235
    assert links_list_all_renditions(links) is False
    assert renditions_from_links(links) == {
        "thumb": "https://images-assets.nasa.gov/image/PIA12235/PIA12235~thumb.jpg",
    }


def test_v10_video_links_ignore_captions():
    links = load("search-moon-page1.json")["collection"]["items"][0]["links"]
    found = renditions_from_links(links)
    assert list(found) == ["thumb"]
    assert found["thumb"].endswith("/NHQ_2019_0311_Go Forward to the Moon~thumb.jpg")
    assert links_list_all_renditions(links) is False


@pytest.mark.parametrize("links", [None, "x", {}, [None, 1, "str"], [{"render": "image"}]])
def test_malformed_links(links):
    assert renditions_from_links(links) == {}
    assert links_list_all_renditions(links) is False


def test_a_single_sized_link_is_not_a_full_listing():
    links = [{"href": f"{ISS}~thumb.jpg", "rel": "preview", "render": "image", "size": 74000}]
    assert links_list_all_renditions(links) is False


def test_collection_json_sample_dedupes_orig_and_ignores_metadata():
    urls = load("assets-collection-json-NHQ202401260011.json")
    assert urls.count(f"{NHQ}~orig.jpg") == 2  # the recorded quirk
    assert renditions_from_urls(urls) == {
        "orig": f"{NHQ}~orig.jpg",
        "large": f"{NHQ}~large.jpg",
        "medium": f"{NHQ}~medium.jpg",
        "small": f"{NHQ}~small.jpg",
        "thumb": f"{NHQ}~thumb.jpg",
    }


def test_asset_manifest_urls():
    hrefs = [i["href"] for i in load("asset-as11-40-5874.json")["collection"]["items"]]
    found = renditions_from_urls(hrefs)
    assert sorted(found) == sorted(RENDITIONS)
    assert found["large"] == (
        "http://images-assets.nasa.gov/image/as11-40-5874/as11-40-5874~large.jpg"
    )


def test_first_url_of_a_rendition_wins_and_non_strings_skipped():
    urls = [None, 3, "https://h/a~large.jpg", "https://h/b~large.png"]
    assert renditions_from_urls(urls) == {"large": "https://h/a~large.jpg"}


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://h/image/x/x~orig.tif", "orig"),
        ("https://h/image/x/x~orig.TIFF", "orig"),
        ("https://h/image/x/x~large.png", "large"),
        ("https://h/image/x/x~medium.JPG", "medium"),
        ("https://h/image/a b/a b~small.jpg", "small"),
        ("https://h/image/a%20b/a%20b~thumb.jpg", "thumb"),
        ("https://h/image/x/x~thumb.jpg?download=1", "thumb"),
        ("https://h/video/x/x~orig.mp4", None),
        ("https://h/video/x/x.srt", None),
        ("https://h/video/x/x~orig.srt", None),
        ("https://h/image/x/metadata.json", None),
        ("https://h/image/x/x~orig.json", None),
        ("https://h/image/x/x~preview.jpg", None),
        ("https://h/image/x~large.jpg/other", None),
        ("", None),
    ],
)
def test_rendition_of(url, expected):
    assert rendition_of(url) == expected


ALL = {r: f"https://h/x~{r}.jpg" for r in RENDITIONS}


def without(*names):
    return {k: v for k, v in ALL.items() if k not in names}


@pytest.mark.parametrize(
    "available, preferred, expected",
    [
        (ALL, "large", "large"),
        (ALL, "orig", "orig"),
        (ALL, "thumb", "thumb"),
        # equal distance: the smaller one first, "orig" may be a huge TIFF
        (without("large"), "large", "medium"),
        (without("medium"), "medium", "small"),
        (without("thumb"), "thumb", "small"),
        (without("orig"), "orig", "large"),
        ({"orig": "o", "thumb": "t"}, "large", "orig"),
        ({"orig": "o", "thumb": "t"}, "small", "thumb"),
        ({"thumb": "t"}, "orig", "thumb"),
        ({"orig": "o"}, "thumb", "orig"),
    ],
)
def test_choose_rendition(available, preferred, expected):
    assert choose_rendition(available, preferred) == (expected, available[expected])


def test_choose_rendition_nothing_available():
    assert choose_rendition({}, "large") is None
    assert choose_rendition({"poster": "https://h/x~poster.jpg"}, "large") is None


@pytest.mark.parametrize("preferred", ["huge", "", "Large"])
def test_choose_rendition_unknown_preference(preferred):
    with pytest.raises(ValueError, match="unknown rendition"):
        choose_rendition(ALL, preferred)
