"""Column schemas of the dataset's Parquet tables (see docs/data-model.md, which a test compares with them)."""

import numpy as np
import pandas as pd
import pyarrow as pa

from nasa_assets.storage import ObjectStore

_TS = pa.timestamp("us", tz="UTC")

SEARCH_FIELDS = [
    ("page", pa.int64()), ("position", pa.int64()), ("nasa_id", pa.string()), ("title", pa.string()),
    ("description", pa.string()), ("date_created", _TS), ("center", pa.string()),
    ("keywords", pa.list_(pa.string())), ("media_type", pa.string()), ("photographer", pa.string()),
    ("location", pa.string()), ("preview_url", pa.string()), ("collection_url", pa.string()),
    ("raw", pa.string()),
]

SCHEMAS: dict[str, pa.Schema] = {
    "search_results": pa.schema(SEARCH_FIELDS),
    "sampled_manifest": pa.schema(
        SEARCH_FIELDS + [("rendition", pa.string()), ("image_url", pa.string()), ("image_key", pa.string())]
    ),
    "moon_images": pa.schema([
        ("nasa_id", pa.string()), ("image_key", pa.string()), ("image_uri", pa.string()),
        ("rendition", pa.string()), ("source_url", pa.string()), ("bytes", pa.int64()),
        ("sha256", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
        ("format", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ]),
    # One row per distinct stored image of all pages so far (asset moon_dataset, see card.py).
    "moon_dataset": pa.schema([
        ("nasa_id", pa.string()), ("split", pa.string()), ("page", pa.int64()),
        ("title", pa.string()), ("description", pa.string()), ("date_created", _TS),
        ("center", pa.string()), ("keywords", pa.list_(pa.string())), ("photographer", pa.string()),
        ("location", pa.string()), ("image_key", pa.string()), ("image_uri", pa.string()),
        ("rendition", pa.string()), ("source_url", pa.string()), ("bytes", pa.int64()),
        ("sha256", pa.string()), ("width", pa.int64()), ("height", pa.int64()), ("format", pa.string()),
        ("caption", pa.string()), ("phash", pa.string()), ("duplicate_group", pa.string()),
    ]),
    "rejected": pa.schema([
        ("page", pa.int64()), ("position", pa.int64()), ("nasa_id", pa.string()),
        ("reason", pa.string()), ("raw", pa.string()),
    ]),
}


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """A DataFrame with exactly the table's columns and types, also when `rows` is empty."""
    schema = SCHEMAS[table]
    arrow = pa.Table.from_pylist(
        [{f.name: _plain(row.get(f.name)) for f in schema} for row in rows], schema=schema
    )
    return arrow.to_pandas()


def _plain(value):
    """A value read back from Parquet as plain Python: lists, datetimes, None for missing."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, dict)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


# moon_images statuses whose image is in storage.
STORED = ("stored", "already_stored")


def records(df: pd.DataFrame) -> list[dict]:
    """Rows of a table as dicts of plain Python values (NaN/NaT become None)."""
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def to_arrow(table: str | None, df: pd.DataFrame) -> pa.Table:
    """Arrow table for writing; known tables keep their declared types even when empty."""
    if table in SCHEMAS:
        schema = SCHEMAS[table]
        return pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)
    return pa.Table.from_pandas(df, preserve_index=False)


def write_table(store: ObjectStore, key: str, table: str | None, df: pd.DataFrame) -> None:
    """Write `df` as Parquet under `key`; a known `table` keeps its exact schema."""
    store.write_parquet(key, to_arrow(table, df))
