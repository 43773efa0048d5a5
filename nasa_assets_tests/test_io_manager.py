"""The Parquet IO manager: where each table lives (derived from the asset key, prefix included)
and "one page or many" ({page: table} both ways, also for one page)."""

import dagster as dg
import pandas as pd

from nasa_assets.defs.assets import moon_images, sampled_manifest, search_results
from nasa_assets.defs.io_manager import ParquetIOManager, dataset_folder, sibling, table_path
from nasa_assets.defs.partitions import search_pages
from nasa_assets.defs.resources import LocalDatasetStorage
from nasa_assets_tests.helpers import local_env, materialize_pages, read_table


def test_table_path_follows_the_asset_key():
    """The prefix names the dataset's folder, the last part the table inside it."""
    assert table_path(dg.AssetKey("moon_images"), "0001") == "moon_images/0001.parquet"
    assert dataset_folder(dg.AssetKey("moon_images")) == ""
    assert table_path(dg.AssetKey(["nasa", "moon_images"]), "0001") == "moon_images/0001.parquet"
    assert table_path(dg.AssetKey(["nasa", "moon_dataset"])) == "moon_dataset.parquet"
    assert dataset_folder(dg.AssetKey(["nasa", "moon_dataset"])) == "nasa"
    assert sibling(dg.AssetKey(["nasa", "sampled_manifest"]), "rejected") == dg.AssetKey(
        ["nasa", "rejected"]
    )


def _resources(root):
    storage = LocalDatasetStorage(root=str(root))
    return {"storage": storage, "io_manager": ParquetIOManager(storage=storage)}


@dg.asset(partitions_def=search_pages, key_prefix="p", backfill_policy=dg.BackfillPolicy.single_run())
def pages(context: dg.AssetExecutionContext):
    return {key: pd.DataFrame({"page": [key]}) for key in context.partition_keys}


@dg.asset(key_prefix="p", ins={
    "pages": dg.AssetIn(key=["p", "pages"], metadata={"allow_missing_partitions": True}),
})
def combined(pages) -> pd.DataFrame:
    assert isinstance(pages, dict)
    return pd.DataFrame({"pages": [",".join(pages)]})


@dg.asset(partitions_def=search_pages, key_prefix="p",
          ins={"pages": dg.AssetIn(key=["p", "pages"])})
def per_page(context: dg.AssetExecutionContext, pages):
    return {key: pages[key].assign(seen=True) for key in context.partition_keys}


def test_pages_are_stored_and_read_back_as_page_dicts_under_the_key_prefix(tmp_path):
    resources = _resources(tmp_path)
    tags = {"dagster/asset_partition_range_start": "0002", "dagster/asset_partition_range_end": "0003"}
    assert dg.materialize([pages], resources=resources, tags=tags).success
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")) == [
        "p/pages/0002.parquet", "p/pages/0003.parquet",
    ]
    # One page: still {page: table}, read from the prefixed path.
    one = dg.materialize([pages, per_page], resources=resources, partition_key="0003",
                         selection=[per_page])
    assert one.success
    assert read_table((tmp_path / "p/per_page/0003.parquet").read_bytes()).to_dict("records") == [
        {"page": "0003", "seen": True}
    ]
    # All pages, two of 100 stored: the others are skipped, not an error.
    assert dg.materialize([pages, combined], resources=resources, selection=[combined]).success
    assert read_table((tmp_path / "p/combined.parquet").read_bytes())["pages"].tolist() == ["0002,0003"]


def test_a_bare_table_from_a_partitioned_asset_is_refused(tmp_path):
    @dg.asset(partitions_def=search_pages, name="pages", key_prefix="p")
    def bare(context: dg.AssetExecutionContext):
        return pd.DataFrame({"page": [context.partition_key]})

    result = dg.materialize([bare], resources=_resources(tmp_path), partition_key="0001",
                            raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert ("p/pages must return {page: table} for pages ['0001']; it returned DataFrame"
            in failure.message)
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_key_prefix_keeps_already_stored_working(tmp_path, nasa_double):
    """The assets read their earlier tables through table_path: under a prefix the second run finds
    what the first stored, and downloads nothing."""
    env = local_env(nasa_double, tmp_path)
    prefixed = dg.load_assets_from_modules(
        [search_results, sampled_manifest, moon_images], key_prefix="nasa"
    )
    assert materialize_pages(env, "0001", assets=prefixed).success
    assert (tmp_path / "nasa/moon_images/0001.parquet").exists()
    assert (tmp_path / "nasa/rejected/0001.parquet").exists()
    assert (tmp_path / "nasa/images").is_dir()
    assert not (tmp_path / "moon_images").exists() and not (tmp_path / "images").exists()
    nasa_double.reset_counts()
    assert materialize_pages(env, "0001", assets=prefixed).success
    assert nasa_double.counts["image"] == 0
    # The first run looked up renditions in collection.json (63 items of the double's page 1);
    # the second finds them in the earlier sampled_manifest table under the prefix.
    assert nasa_double.counts["collection"] == 0
    again = read_table((tmp_path / "nasa/moon_images/0001.parquet").read_bytes())
    assert len(again) == 100 and set(again["status"]) == {"already_stored"}
