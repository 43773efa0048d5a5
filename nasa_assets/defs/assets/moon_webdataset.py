"""moon_webdataset: WebDataset tar shards of moon_dataset per split, with an index, in the same store."""

import hashlib
import io
import time

import dagster as dg
import pandas as pd

from nasa_assets.dataset.webdataset_export import (
    INDEX_NAME,
    PREFIX,
    read_index,
    stale_reason,
    write_webdataset,
)
from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.pages import MOON, asset_options, key_of
from nasa_assets.defs.io_manager import dataset_store, sibling, table_path
from nasa_assets.defs.resources import CurationSettings, DatasetStorage
from nasa_assets.storage import ObjectStore


def _metadata(index: dict, store: ObjectStore) -> dict:
    return {
        "moon_dataset_sha256": index["moon_dataset_sha256"],
        "shards": len(index["shards"]),
        "samples": index["samples"],
        "samples_per_split": dg.MetadataValue.json(
            {name: split["samples"] for name, split in sorted(index["splits"].items())}),
        "shards_per_split": dg.MetadataValue.json(
            {name: split["shards"] for name, split in sorted(index["splits"].items())}),
        "bytes": index["bytes"],
        "skipped": len(index["skipped"]),
        "skipped_examples": dg.MetadataValue.json(index["skipped"][:10]),
        "index_uri": dg.MetadataValue.path(store.uri(f"{PREFIX}/{INDEX_NAME}")),
    }


def moon_webdataset_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """moon_webdataset of one dataset: `webdataset/` of the dataset's root."""

    @dg.asset(
        **asset_options(spec),
        kinds={"python"},
        deps=[key_of(spec, "moon_dataset")],
        # Rebuilt after each moon_dataset build; the asset itself skips the work when the manifest's
        # bytes did not change.
        automation_condition=dg.AutomationCondition.eager(),
    )
    def moon_webdataset(
        context: dg.AssetExecutionContext, storage: DatasetStorage, curation: CurationSettings
    ) -> dg.MaterializeResult:
        """moon_dataset as WebDataset tar shards per split (<root>/webdataset/<split>/<split>-NNNNNN.tar,
        each sample <key>.jpg + <key>.json) and <root>/webdataset/index.json.

        Rebuilt only when moon_dataset.parquet (or the shard bounds) changed; otherwise the run
        records `rebuilt: false` and writes nothing."""
        return export(context, storage, curation)

    return moon_webdataset


def export(context: dg.AssetExecutionContext, storage: DatasetStorage,
           curation: CurationSettings) -> dg.MaterializeResult:
    store = dataset_store(storage, context.asset_key)
    table = table_path(sibling(context.asset_key, "moon_dataset"))
    try:
        # One read: the version recorded is that of the very table exported, even when
        # moon_dataset is rebuilt meanwhile. (The same sha256 as manifest_version.)
        data = store.get_bytes(table)
    except FileNotFoundError:
        raise dg.Failure(
            description=f"no moon_dataset at {store.uri(table)}: materialize moon_dataset first",
            allow_retries=False,
        ) from None
    version = hashlib.sha256(data).hexdigest()
    max_bytes, max_samples = curation.webdataset_max_shard_bytes, curation.webdataset_max_shard_samples
    index = read_index(store)
    reason = stale_reason(store, index, version, max_bytes, max_samples)
    if reason is None:
        context.log.info(f"moon_dataset unchanged ({version[:12]}): the export is kept as it is")
        return dg.MaterializeResult(metadata={"rebuilt": False, "reason": "moon_dataset unchanged",
                                              "duration_seconds": 0.0, **_metadata(index, store)})
    context.log.info(f"writing the WebDataset export: {reason}")
    started = time.perf_counter()
    index = write_webdataset(store, pd.read_parquet(io.BytesIO(data)), version=version,
                             max_shard_bytes=max_bytes, max_shard_samples=max_samples)
    duration = round(time.perf_counter() - started, 3)
    if index["skipped"]:
        context.log.warning(f"{len(index['skipped'])} images not exported (missing or changed in "
                            f"storage): {index['skipped'][:3]}")
    return dg.MaterializeResult(metadata={"rebuilt": True, "reason": reason,
                                          "duration_seconds": duration, **_metadata(index, store)})


moon_webdataset = moon_webdataset_asset()
