"""Image URLs that went away: which answers mean "gone", and a format 1.0 listing looked up again."""

from nasa_assets.dataset.manifest import forget_gone_urls, url_gone
from nasa_assets_tests.helpers import image_row, local_env, materialize_pages, read_table


def test_gone_means_403_404_410_only():
    assert url_gone("HTTP 404 from the file host")
    assert url_gone("HTTP 410 from the file host") and url_gone("HTTP 403 from the file host")
    assert not url_gone("HTTP 503 from the file host")
    assert not url_gone("transfer interrupted (ChunkedEncodingError); gave up after 3 attempts")
    assert not url_gone(None)


def test_forget_gone_urls_drops_only_the_url_that_failed():
    choices = {"a": ("raw", "large", "u/a"), "b": ("raw", "large", "u/b"), "c": ("raw", "large", "u/c")}
    images = [
        {"nasa_id": "a", "source_url": "u/a", "status": "failed", "error": "HTTP 404 from the file host"},
        {"nasa_id": "b", "source_url": "u/old", "status": "failed", "error": "HTTP 404 from the file host"},
        {"nasa_id": "c", "source_url": "u/c", "status": "failed", "error": "HTTP 503 from the file host"},
    ]
    assert forget_gone_urls(choices, images) == ({"b": choices["b"], "c": choices["c"]}, 1)


def test_a_format_1_0_image_url_that_went_away_is_looked_up_again(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path)
    # A format 1.0 item lists only its thumbnail: its image URL comes from collection.json.
    item = next(i for i in nasa_double.corpus()[:100]
                if len(i["links"]) == 1 and i["data"][0]["nasa_id"].startswith("MOON-"))
    nasa_id = item["data"][0]["nasa_id"]
    folder = item["href"].rsplit("/", 1)[0]
    nasa_double.set_collection(nasa_id, [f"{folder}/{nasa_id}-moved~large.jpg"])  # answers 404
    assert materialize_pages(env, "0001").success
    failed = image_row(read_table((tmp_path / "moon_images/0001.parquet").read_bytes()), nasa_id)
    assert (failed["status"], failed["error"]) == ("failed", "HTTP 404 from the file host")

    # The file is back under its usual name; the item's search entry (raw JSON) is unchanged.
    nasa_double.set_collection(nasa_id, [f"{folder}/{nasa_id}~orig.jpg", f"{folder}/{nasa_id}~large.jpg"])
    nasa_double.reset_counts()
    result = materialize_pages(env, "0001")

    assert result.success
    assert nasa_double.counts["collection"] == 1  # that item only; the others reuse their URLs
    healed = image_row(read_table((tmp_path / "moon_images/0001.parquet").read_bytes()), nasa_id)
    assert (healed["status"], healed["source_url"]) == ("stored", f"{folder}/{nasa_id}~large.jpg")
    assert nasa_double.counts["image"] == 1
