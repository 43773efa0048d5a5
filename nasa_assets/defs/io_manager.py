"""Parquet IO manager over the dataset's ObjectStore, in the shape of dagster-aws's S3 managers:
UPathIOManager builds the keys (<asset>/<partition>.parquet), the store does the I/O."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd
from upath import UPath

from nasa_assets.dataset import tables
from nasa_assets.defs.resources import DatasetStorage
from nasa_assets.storage.base import ObjectStore

IO_THREADS = 8


class ParquetStoreIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, store: ObjectStore):
        self.store = store
        # A relative local UPath is only a key builder; no file is touched through it.
        super().__init__(base_path=UPath("."))

    def make_directory(self, path: UPath) -> None:
        return None

    def path_exists(self, path: UPath) -> bool:
        return self.store.exists(path.as_posix())

    def unlink(self, path: UPath) -> None:
        self.store.delete(path.as_posix())

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        tables.write_table(self.store, path.as_posix(), context.asset_key.path[-1], obj)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return self.store.read_parquet(path.as_posix())  # FileNotFoundError when absent

    def load_partitions(self, context: dg.InputContext):
        """Several pages: one listing finds the stored ones, and with allow_missing_partitions
        the rest are skipped with one log line instead of one warning per page."""
        paths = self._get_paths_for_partitions(context)
        if len(paths) == 1:
            return super().load_partitions(context)
        if (context.definition_metadata or {}).get("allow_missing_partitions", False):
            folder = next(iter(paths.values())).parent.as_posix()
            present = set(self.store.sizes(folder + "/"))
            missing = {k for k, p in paths.items() if p.as_posix() not in present}
            if missing:
                context.log.info(f"{folder}: {len(missing)} of {len(paths)} pages not materialized yet, skipped")
            paths = {k: p for k, p in paths.items() if k not in missing}
        # Reads are network round trips: fetch the pages concurrently.
        with ThreadPoolExecutor(max_workers=max(1, min(IO_THREADS, len(paths)))) as pool:
            frames = pool.map(lambda path: self.load_from_path(context, path), paths.values())
            return dict(sorted(zip(paths, frames)))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        """Unlike the stock manager, a single run may cover several pages (a single-run
        backfill): the asset then returns {partition_key: DataFrame}, one object per page."""
        if not context.has_asset_partitions:
            # Not the stock handler: its "path" entry would be relative to nowhere (the UPath
            # here only builds keys); the absolute URI is what a user can open.
            path = self._get_path(context)
            self.dump_to_path(context, obj, path)
            context.add_output_metadata({"uri": dg.MetadataValue.path(self.store.uri(path.as_posix()))})
            return
        paths = self._get_paths_for_partitions(context)
        frames = obj if isinstance(obj, dict) else {next(iter(paths)): obj}
        if set(frames) != set(paths):
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} returned pages {sorted(frames)} "
                f"for partitions {sorted(paths)}"
            )
        with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(paths))) as pool:
            list(pool.map(lambda key: self.dump_to_path(context, frames[key], paths[key]), paths))
        uris = [self.store.uri(paths[k].as_posix()) for k in sorted(paths)]
        context.add_output_metadata({
            "uri": dg.MetadataValue.path(uris[0]) if len(uris) == 1 else dg.MetadataValue.json(uris),
        })


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Tables as Parquet under the dataset root, `<asset>/<page>.parquet`, locally or in S3."""

    storage: dg.ResourceDependency[DatasetStorage]

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetStoreIOManager:
        return ParquetStoreIOManager(self.storage.store())
