"""Perceptual hashes, duplicate groups and group-wise splits."""

import io
import itertools
import random
import subprocess
import sys

import pytest
from PIL import Image

from nasa_assets.dataset.duplicates import (
    assign_splits, duplicate_counts, example_pairs, group_duplicates, groups_across_splits, hamming,
    near_pairs, phash_of, phashes_of_stored,
)
from nasa_assets.dataset.sampling import split_for
from nasa_assets.storage import LocalStore
from nasa_assets_tests.small_dataset import encoded, picture, write_small_dataset

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def jpeg(image: Image.Image, **options) -> bytes:
    return encoded(image, "JPEG", **options)


def test_phash_is_16_hex_digits_from_bytes_path_or_stream(tmp_path):
    data = jpeg(picture(1), quality=90)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    by_bytes = phash_of(data)
    assert len(by_bytes) == 16 and int(by_bytes, 16) >= 0
    assert phash_of(path) == phash_of(str(path)) == phash_of(io.BytesIO(data)) == by_bytes


def test_phash_sees_re_encodings_and_resizes_as_near_and_other_pictures_as_far():
    original = picture(1)
    base = phash_of(jpeg(original, quality=95))
    smaller = phash_of(jpeg(original.resize((800, 600)), quality=60))
    assert hamming(base, smaller) <= 6
    assert hamming(base, phash_of(encoded(original, "PNG"))) <= 6
    for seed in range(2, 6):
        assert hamming(base, phash_of(jpeg(picture(seed), quality=95))) > 6


@pytest.mark.parametrize("mode, fmt, options", [
    ("L", "JPEG", {}), ("CMYK", "JPEG", {}), ("RGB", "JPEG", {"progressive": True}),
    ("RGBA", "PNG", {}), ("P", "GIF", {}), ("I;16", "TIFF", {}), ("RGB", "WEBP", {}),
])
def test_phash_of_other_modes_and_formats_matches_the_rgb_picture(mode, fmt, options):
    image = picture(3, (1200, 900))
    reference = phash_of(encoded(image, "PNG"))
    converted = image.convert("L").convert(mode) if mode == "I;16" else image.convert(mode)
    assert hamming(phash_of(encoded(converted, fmt, **options)), reference) <= 2


def test_phash_follows_the_exif_orientation():
    image = picture(3, (1200, 900))
    reference = phash_of(encoded(image, "PNG"))
    stored_sideways = image.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    assert phash_of(encoded(stored_sideways, "JPEG", exif=exif)) == reference
    assert hamming(phash_of(encoded(stored_sideways, "JPEG")), reference) > 6


def test_phashes_of_stored_images_with_reasons_for_the_bad_ones(tmp_path):
    store = LocalStore(tmp_path)
    manifest, images = write_small_dataset(store)
    rows = manifest.to_dict("records")
    store.delete(rows[0]["image_key"])
    store.put_bytes(rows[1]["image_key"], b"<html>not an image</html>")
    hashes, reasons = phashes_of_stored(store, rows)
    assert hashes == {r["nasa_id"]: None if i < 2 else phash_of(images[r["nasa_id"]])
                      for i, r in enumerate(rows)}
    assert reasons[rows[0]["nasa_id"]] == f"missing: {store.uri(rows[0]['image_key'])}"
    assert reasons[rows[1]["nasa_id"]].startswith("cannot compute a perceptual hash")
    assert set(reasons) == {rows[0]["nasa_id"], rows[1]["nasa_id"]}
    # Threads give the same answer.
    assert phashes_of_stored(store, rows, workers=4) == (hashes, reasons)


def test_draft_decoding_hashes_close_to_a_full_decode():
    for seed in range(3):
        data = jpeg(picture(seed, size=(4000, 3000)), quality=90)
        assert hamming(phash_of(data), phash_of(data, draft=False)) <= 4


def test_phash_of_garbage_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot compute a perceptual hash"):
        phash_of(b"not an image")
    truncated = jpeg(picture(1))[:2000]
    with pytest.raises(ValueError, match="cannot compute a perceptual hash"):
        phash_of(truncated)


def _planted(n: int, seed: int, threshold: int) -> tuple[list[str], set[tuple[str, str]]]:
    """Random hashes plus copies with 0..threshold+2 flipped bits (some in, some out of range);
    and the planted pairs within 1..threshold bits."""
    rng = random.Random(seed)
    hashes = [rng.getrandbits(64) for _ in range(n)]
    planted = set()
    for base in rng.sample(hashes, n // 4):
        flips = rng.randint(0, threshold + 2)
        copy = base
        for bit in rng.sample(range(64), flips):
            copy ^= 1 << bit
        hashes.append(copy)
        if 0 < flips <= threshold:
            planted.add(tuple(sorted((f"{base:016x}", f"{copy:016x}"))))
    return [f"{h:016x}" for h in hashes], planted


@pytest.mark.parametrize("threshold", [1, 4, 6, 10])
def test_index_finds_exactly_what_brute_force_finds(threshold):
    hashes, planted = _planted(1500, seed=threshold, threshold=threshold)
    distinct = sorted(set(hashes))
    brute = {(a, b, hamming(a, b)) for a, b in itertools.combinations(distinct, 2)
             if hamming(a, b) <= threshold}
    found = list(near_pairs(hashes, threshold))
    assert len(found) == len(set(found))
    assert set(found) == brute
    assert len(planted) > 50 and planted <= {(a, b) for a, b, _ in brute}


def test_identical_hashes_are_not_a_near_pair():
    assert list(near_pairs(["00000000000000ff", "00000000000000FF", "00000000000000fe"], 0)) == []


def test_near_pairs_rejects_a_threshold_outside_the_hash():
    with pytest.raises(ValueError, match="threshold"):
        list(near_pairs(["00"], 64))


def row(nasa_id, sha, phash):
    return {"nasa_id": nasa_id, "sha256": sha, "phash": phash}


ROWS = [
    row("d", "s1", "0000000000000000"),
    row("b", "s1", "00000000000000ff"),    # same bytes as d, whatever its phash
    row("x", "s2", "000000000000003f"),    # 2 bits from b: near
    row("y", "s3", "0000000000000fff"),    # 4 bits from b, 6 from x, 12 from d: near via b
    row("m", "s4", "ffff0000ffff0000"),    # alone
    row("n", "s5", "FFFF0000FFFF0001"),    # 1 bit from m (upper-case hex)
    row("p", "s6", None),                  # no hash: alone
    row("q", "s6", None),                  # same bytes as p
]


def test_groups_are_transitive_and_named_by_their_smallest_id():
    groups = group_duplicates(ROWS, threshold=6)
    assert groups == {"d": "b", "b": "b", "x": "b", "y": "b", "m": "m", "n": "m", "p": "p", "q": "p"}
    strict = group_duplicates(ROWS, threshold=0)
    assert strict == {"d": "b", "b": "b", "x": "x", "y": "y", "m": "m", "n": "n", "p": "p", "q": "p"}


def test_group_ids_do_not_depend_on_row_order():
    shuffled = ROWS[:]
    random.Random(3).shuffle(shuffled)
    assert group_duplicates(shuffled) == group_duplicates(ROWS)


def test_bad_phash_is_named():
    with pytest.raises(ValueError, match="'a'"):
        group_duplicates([row("a", "s", "zz")])
    with pytest.raises(ValueError, match="not hex"):
        group_duplicates([row("a", "s", "1" * 17)])


def test_no_group_crosses_splits_and_lone_images_keep_their_nasa_id_split():
    hashes, _ = _planted(3000, seed=7, threshold=6)
    rows = [row(f"id{i:05d}", f"sha{i % 2900}", h) for i, h in enumerate(hashes)]
    groups = group_duplicates(rows)
    splits = assign_splits(groups, FRACTIONS)
    by_group: dict[str, set[str]] = {}
    for nasa_id, group in groups.items():
        by_group.setdefault(group, set()).add(splits[nasa_id])
    assert all(len(names) == 1 for names in by_group.values())
    sizes = {g: list(groups.values()).count(g) for g in by_group}
    assert max(sizes.values()) > 1  # groups with several members exist
    lone = [i for i, g in groups.items() if sizes[g] == 1]
    assert lone and all(splits[i] == split_for(i, FRACTIONS) for i in lone)
    counts = {name: list(splits.values()).count(name) for name in FRACTIONS}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0


def test_groups_across_splits_names_each_group_in_several_splits():
    rows = [{"duplicate_group": g, "split": s} for g, s in
            [("a", "train"), ("a", "test"), ("a", "train"), ("b", "test"), ("c", "train"),
             ("c", "validation")]]
    assert groups_across_splits(rows) == {"a": ["test", "train"], "c": ["train", "validation"]}
    assert groups_across_splits(rows[3:5]) == {}


def test_splits_are_the_same_in_another_process_and_a_seed_changes_them():
    groups = {f"id{i}": f"id{i - i % 3}" for i in range(300)}
    here = assign_splits(groups, FRACTIONS)
    code = ("import json,sys; from nasa_assets.dataset.duplicates import assign_splits; "
            "print(json.dumps(assign_splits(json.loads(sys.argv[1]), json.loads(sys.argv[2]))))")
    import json
    other = subprocess.run(
        [sys.executable, "-c", code, json.dumps(groups), json.dumps(FRACTIONS)],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == here
    seeded = assign_splits(groups, FRACTIONS, seed="2")
    assert seeded != here and seeded == assign_splits(groups, FRACTIONS, seed="2")


def test_counts_and_example_pairs():
    groups = group_duplicates(ROWS)
    assert duplicate_counts(ROWS, groups) == {
        "images": 8, "groups": 3, "duplicate_groups": 3, "images_in_duplicate_groups": 8,
        "exact_copies": 2, "near_copies": 3, "largest_group": 4,
    }
    assert duplicate_counts([], {})["largest_group"] == 0
    pairs = example_pairs(ROWS, limit=3)
    assert pairs["exact"] == [{"a": "b", "b": "d", "distance": 0}, {"a": "p", "b": "q", "distance": 0}]
    assert pairs["near"] == [{"a": "b", "b": "x", "distance": 2}, {"a": "m", "b": "n", "distance": 1}]
    assert example_pairs(ROWS, limit=1) == {"exact": pairs["exact"][:1], "near": pairs["near"][:1]}
