"""What each column of moon_dataset means, and its type in words: the card's schema table."""

import pyarrow as pa

from nasa_assets.dataset.markdown import cell, table
from nasa_assets.dataset.tables import SCHEMAS

# What each column of moon_dataset means; the card lists them with their Parquet types.
COLUMN_MEANINGS: dict[str, str] = {
    "nasa_id": "NASA's identifier of the item; unique in this table",
    "split": "train / validation / test (or the configured names), fixed by a hash of "
             "duplicate_group: every copy of a picture is in one split",
    "page": "the search page (1-100) where the image was first seen",
    "title": "title given by NASA",
    "description": "NASA's description (may contain credits and caption text)",
    "date_created": "when the image was created, UTC",
    "center": "NASA center that holds the item (HQ, JSC, KSC, JPL, ...)",
    "keywords": "NASA's keywords, a list of strings (may be empty)",
    "photographer": "credited photographer, when NASA lists one",
    "location": "where the image was taken, when NASA lists it",
    "image_key": "the image file, relative to the dataset root (`images/<safe nasa_id>.<ext>`)",
    "image_uri": "absolute location of the image when it was stored (`s3://...` or `file://...`)",
    "rendition": "which NASA rendition was kept: orig, large, medium, small or thumb",
    "source_url": "where the image was downloaded from on NASA's file host",
    "bytes": "size of the stored file in bytes",
    "sha256": "SHA-256 of the stored file, hex",
    "width": "width in pixels",
    "height": "height in pixels",
    "format": "file format as Pillow reports it (JPEG, PNG, TIFF, ...)",
    "caption": "title and description cleaned for image-text training (no HTML, credits or "
               "boilerplate; keywords when the description adds nothing), at most 1,000 characters",
    "phash": "64-bit perceptual hash of the stored image (imagehash pHash), 16 hex digits; "
             "null when the file cannot be decoded",
    "duplicate_group": "the smallest nasa_id among this image's exact (same sha256) and near "
                       "(close phash) duplicates; its own nasa_id when it has none",
}


def type_name(arrow_type: pa.DataType) -> str:
    """A Parquet/Arrow type in words that survive Markdown: "list of string", "timestamp (us, UTC)"."""
    if pa.types.is_list(arrow_type):
        return f"list of {type_name(arrow_type.value_type)}"
    if pa.types.is_timestamp(arrow_type):
        return f"timestamp ({arrow_type.unit}, {arrow_type.tz or 'naive'})"
    return str(arrow_type)


def schema_table() -> list[str]:
    return table(["column", "type", "meaning"], (
        [f"`{f.name}`", type_name(f.type), cell(COLUMN_MEANINGS.get(f.name, ""))]
        for f in SCHEMAS["moon_dataset"]
    ))
