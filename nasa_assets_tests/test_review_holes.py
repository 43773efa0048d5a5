"""Holes found in review (issue 10, part 5): image URLs that went away, and letter case in ids."""

from nasa_assets.dataset.manifest import forget_gone_urls, url_gone
from nasa_assets_tests.helpers import local_env, materialize_pages, read_table


def image_row(table, nasa_id):
    [row] = table[table["nasa_id"] == nasa_id].to_dict("records")
    return row


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


def test_two_ids_differing_only_in_case_get_two_files_even_where_case_is_ignored(target, nasa_double):
    env, reader = target
    nasa_double.replace_item(3, "AS11-40-5874")
    nasa_double.replace_item(4, "as11-40-5874")
    assert materialize_pages(env, "0001").success

    images = read_table(reader.get("moon_images/0001.parquet"))
    assert set(images["status"]) == {"stored"}
    keys = reader.image_keys()
    assert len(keys) == 100
    assert len({key.casefold() for key in keys}) == 100  # no two files a case-blind disk would merge
    upper, lower = image_row(images, "AS11-40-5874"), image_row(images, "as11-40-5874")
    assert upper["image_key"] == "images/AS11-40-5874.jpg"  # upper-case ids keep their plain key
    assert lower["image_key"].startswith("images/as11-40-5874~")
    for row in (upper, lower):
        served = nasa_double.image_bytes_for(row["nasa_id"], "large")
        assert reader.get(row["image_key"]) == served
    assert upper["sha256"] != lower["sha256"]
