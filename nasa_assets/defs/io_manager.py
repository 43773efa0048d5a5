"""Parquet tables under the dataset root, through the dataset's ObjectStore.

Two things are decided here and nowhere else. Where a table lives: the asset key's prefix names
the dataset's folder in the storage root (`dataset_store`; no prefix is the root itself) and its
last part the table inside it (`table_path`), for this IO manager and for the assets that read an
earlier table or write images themselves, so a key prefix moves all of a dataset alike. And "one
page or many": a run may cover a range of pages (a 100-page backfill is one process), so a
page-partitioned asset always hands over, and always receives, {page key: DataFrame}, also when
the run has one page."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.keys import table_key
from nasa_assets.defs.resources import DatasetStorage
from nasa_assets.storage import ObjectStore

IO_THREADS = 8


def table_path(asset_key: dg.AssetKey, page: str | None = None) -> str:
    """The key of an asset's table in its dataset's store: `<asset>/<page>.parquet`, or
    `<asset>.parquet` when the asset is not partitioned."""
    return table_key(asset_key.path[-1], page)


def dataset_folder(asset_key: dg.AssetKey) -> str:
    """The folder of the asset's dataset inside the storage root: its key prefix ("" for none)."""
    return "/".join(asset_key.path[:-1])


def dataset_store(storage: DatasetStorage, asset_key: dg.AssetKey) -> ObjectStore:
    """The store of the asset's dataset: `<root>/<key prefix>/`, the root itself without one."""
    return storage.store(dataset_folder(asset_key))


def stored_pages(store: ObjectStore, asset_key: dg.AssetKey, pages: list[str]) -> list[str]:
    """Those of `pages` whose table of `asset_key` is in storage, found with one listing."""
    folder = table_path(asset_key, "-").rpartition("/")[0] + "/"
    present = set(store.sizes(folder))
    return [page for page in pages if table_path(asset_key, page) in present]


def sibling(asset_key: dg.AssetKey, name: str) -> dg.AssetKey:
    """The asset (or side table) `name` under the same key prefix as `asset_key`."""
    return dg.AssetKey([*asset_key.path[:-1], name])


class ParquetStoreIOManager(dg.IOManager):
    def __init__(self, storage: DatasetStorage):
        self.storage = storage

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        name = context.asset_key.path[-1]
        store = dataset_store(self.storage, context.asset_key)
        if not context.has_asset_partitions:
            key = table_path(context.asset_key)
            tables.write_table(store, key, name, obj)
            context.add_output_metadata({"uri": dg.MetadataValue.path(store.uri(key))})
            return
        pages = sorted(context.asset_partition_keys)
        if not isinstance(obj, dict) or set(obj) != set(pages):
            returned = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} must return {{page: table}} for pages "
                f"{pages}; it returned {returned}"
            )
        keys = {page: table_path(context.asset_key, page) for page in pages}
        with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(pages))) as pool:
            list(pool.map(lambda p: tables.write_table(store, keys[p], name, obj[p]), pages))
        uris = [store.uri(keys[page]) for page in pages]
        context.add_output_metadata({
            "uri": dg.MetadataValue.path(uris[0]) if len(uris) == 1 else dg.MetadataValue.json(uris)
        })

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """A table, or {page: table} of a page-partitioned asset. With allow_missing_partitions,
        pages never materialized are skipped: one listing finds them, one log line counts them."""
        store = dataset_store(self.storage, context.asset_key)
        if not context.has_asset_partitions:
            # FileNotFoundError when absent
            return store.read_parquet(table_path(context.asset_key))
        pages = sorted(context.asset_partition_keys)
        if (context.definition_metadata or {}).get("allow_missing_partitions", False):
            found = stored_pages(store, context.asset_key, pages)
            if len(found) < len(pages):
                context.log.info(f"{context.asset_key.to_user_string()}: {len(pages) - len(found)} "
                                 f"of {len(pages)} pages not materialized yet, skipped")
            pages = found
        keys = {page: table_path(context.asset_key, page) for page in pages}
        # Reads are network round trips: fetch the pages concurrently.
        with ThreadPoolExecutor(max_workers=max(1, min(IO_THREADS, len(keys)))) as pool:
            return dict(zip(keys, pool.map(store.read_parquet, keys.values())))


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Tables as Parquet under each dataset's root, `<asset>/<page>.parquet`, locally or in S3."""

    storage: dg.ResourceDependency[DatasetStorage]

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetStoreIOManager:
        return ParquetStoreIOManager(self.storage)
