from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.downloader import Downloader
from nasa_assets.dataset.imaging import sha256_of
from nasa_assets.dataset.markdown import cell, table
from nasa_assets.dataset.sampling import seeded_sample
from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.pages import MOON, key_of, page_asset_options, page_output
from nasa_assets.defs.assets.sampled_manifest import MANIFEST_VALID
from nasa_assets.defs.io_manager import dataset_store, table_path
from nasa_assets.defs.resources import DatasetSettings, DatasetStorage, NasaApiResource
from nasa_assets.nasa.urls import url_block_reason
from nasa_assets.storage import LocalStore, ObjectStore

IMAGES_COMPLETE = "images_complete"
HASH_SAMPLE_PER_PAGE = 5


def refusal_reason(evaluations: list[dg.AssetCheckEvaluation]) -> str | None:
    """Why a page's images may not be downloaded, given the manifest_valid evaluations of the run
    that wrote the page's manifest (its last one decides); None when that evaluation passed."""
    if not evaluations:
        return f"{MANIFEST_VALID} was not evaluated in the run that wrote the manifest"
    last = evaluations[-1]
    if last.passed or last.severity != dg.AssetCheckSeverity.ERROR:
        return None
    problems = last.metadata.get("problems")
    return f"{MANIFEST_VALID} failed: {problems.value if problems else 'no problems recorded'}"


def refused_pages(instance: dg.DagsterInstance, manifest_key: dg.AssetKey, pages) -> dict[str, str]:
    """page -> reason, for the pages whose latest sampled_manifest materialization did not pass
    manifest_valid. The check is recorded for the whole step (no partition), so the page's latest
    materialization names the run, and that run's evaluation is the page's. A page with no
    recorded materialization (another instance wrote it) is not refused."""
    by_run: dict[str, str | None] = {}
    refused = {}
    for page in pages:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=manifest_key, asset_partitions=[page]), limit=1
        ).records
        if not records:
            continue
        run_id = records[0].run_id
        if run_id not in by_run:
            events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            evaluations = [e.dagster_event.event_specific_data for e in events]
            by_run[run_id] = refusal_reason([
                e for e in evaluations if e.asset_key == manifest_key and e.check_name == MANIFEST_VALID
            ])
        if by_run[run_id]:
            refused[page] = f"{by_run[run_id]} (run {run_id[:8]})"
    return refused


def moon_images_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """moon_images of one dataset, into `images/` of the dataset's root."""

    @dg.asset(
        **page_asset_options(spec),
        kinds={"python", "parquet"},
        ins={"sampled_manifest": dg.AssetIn(key=key_of(spec, "sampled_manifest"))},
        check_specs=[
            dg.AssetCheckSpec(
                IMAGES_COMPLETE, asset=key_of(spec, "moon_images"),
                description="Every manifest row is stored or failed with a reason, stored objects exist "
                "with their recorded size (sha256 re-read for a sample of those written by the run), "
                "failures within budget.",
            )
        ],
    )
    def moon_images(
        context: dg.AssetExecutionContext,
        sampled_manifest,
        nasa: NasaApiResource,
        settings: DatasetSettings,
        storage: DatasetStorage,
    ):
        """The page's images, streamed from NASA's file host into `images/` of the dataset root,
        one row each.

        Images already in storage are not downloaded again (status already_stored). A page whose
        latest manifest did not pass manifest_valid is refused, also in a run of moon_images alone."""
        yield from download_pages(context, sampled_manifest, nasa, settings, storage)

    return moon_images


def download_pages(context: dg.AssetExecutionContext, sampled_manifest, nasa: NasaApiResource,
                   settings: DatasetSettings, storage: DatasetStorage):
    manifests = sampled_manifest
    manifest_key = context.asset_key_for_input("sampled_manifest")
    refused = refused_pages(context.instance, manifest_key, manifests)
    if refused:
        # Before any request or write: the page's moon_images table and images stay as they were.
        raise dg.Failure(
            description="moon_images refused, nothing downloaded or overwritten: "
            + "; ".join(f"page {page}: {why}" for page, why in refused.items())
            + ". Fix the cause, then materialize sampled_manifest for these pages again.",
            metadata={"refused_pages": refused},
        )
    store = dataset_store(storage, context.asset_key)
    if isinstance(store, LocalStore) and (removed := store.remove_orphans()):
        context.log.info(f"removed {removed} temporary files left by killed runs")
    downloader = Downloader(nasa.client(), store, max_image_bytes=settings.max_image_bytes,
                            concurrency=settings.download_concurrency, log=context.log)
    earlier = {page: table_path(context.asset_key, page) for page in manifests}
    done = downloader.download(manifests, earlier)
    combined = pd.concat(done.frames.values(), ignore_index=True)
    with ThreadPoolExecutor(max_workers=settings.download_concurrency) as pool:
        check = _completeness(store, manifests, combined, settings.max_failed_fraction, done.listing, pool)
    breaker = downloader.breaker.metadata()
    context.log.info(f"moon_images done; {done.progress.line()}; file host: {breaker}")
    per_page = {page: _counts(frame) for page, frame in done.frames.items()}
    yield page_output(context, done.frames, per_page, {
        "download_mb_per_s": done.progress.mb_per_s(),
        "images_root": store.uri("images/"),
        **breaker,
        "preview": dg.MetadataValue.md(_preview(combined, _thumbnails(manifests, nasa.hosts()))),
    })
    yield check


moon_images = moon_images_asset()


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    statuses = {status: int((frame["status"] == status).sum()) for status in ("stored", "already_stored", "failed")}
    return {"row_count": len(frame), **statuses,
            "bytes_stored": int(frame.loc[frame["status"] == "stored", "bytes"].sum())}


def _completeness(store: ObjectStore, manifests: dict, images: pd.DataFrame, max_failed: float,
                  listed: dict[str, int], pool: ThreadPoolExecutor):
    """`listed` is the step's own listing, taken before any write: already_stored rows were matched
    against it, so storage is listed again only when this run wrote objects, and the sha256 sample
    is drawn from the objects this run wrote (read back concurrently)."""
    problems = []
    expected = set().union(*(set(m["nasa_id"]) for m in manifests.values())) if manifests else set()
    missing = expected - set(images["nasa_id"])
    if missing:
        problems.append(f"{len(missing)} manifest rows have no image row, e.g. {sorted(missing)[:3]}")
    failed = images[images["status"] == "failed"]
    unexplained = failed["error"].isna() | (failed["error"] == "")
    if unexplained.any():
        problems.append(f"{int(unexplained.sum())} failed rows without a reason")
    stored = images[images["status"].isin(tables.STORED)]
    written = images[images["status"] == "stored"]
    sizes = store.sizes("images/") if len(written) else listed
    wrong = list(stored["image_key"][stored["image_key"].map(sizes) != stored["bytes"]])
    if wrong:
        problems.append(f"{len(wrong)} stored objects missing or of another size, e.g. {wrong[:3]}")
    candidates = list(written[~written["image_key"].isin(wrong)].itertuples())
    sample = seeded_sample(candidates, HASH_SAMPLE_PER_PAGE * len(manifests))
    hashes = pool.map(lambda r: sha256_of(store.iter_chunks(r.image_key)), sample)
    bad_hash = [r.image_key for r, digest in zip(sample, hashes) if digest != r.sha256]
    if bad_hash:
        problems.append(f"sha256 mismatch for {bad_hash[:3]}")
    failed_share = len(failed) / len(images) if len(images) else 0.0
    if failed_share > max_failed:
        problems.append(f"{len(failed)} of {len(images)} images failed (budget {max_failed:.0%})")
    return dg.AssetCheckResult(
        check_name=IMAGES_COMPLETE,
        passed=not problems,
        metadata={
            "problems": problems,
            "failed": len(failed),
            "failed_examples": [{"nasa_id": r.nasa_id, "error": r.error} for r in failed.head(5).itertuples()],
            "hash_verified": len(sample),
        },
    )


def _thumbnails(manifests: dict[str, pd.DataFrame], allowed: tuple) -> dict[str, str]:
    """NASA's own thumbnail of each item, for the UI preview; only URLs on the allowed hosts, so a
    hostile item cannot make the UI load something else."""
    return {
        row.nasa_id: row.preview_url
        for frame in manifests.values() for row in frame[["nasa_id", "preview_url"]].itertuples()
        if url_block_reason(row.preview_url, allowed) is None and not set("()[] <>") & set(row.preview_url)
    }


def _preview(frame: pd.DataFrame, thumbnails: dict[str, str] | None = None, limit: int = 6) -> str:
    stored = frame[frame["status"].isin(tables.STORED)].head(limit)
    if stored.empty:
        return "_no images stored_"
    thumbnails = thumbnails or {}
    return "\n".join(table(["thumbnail", "nasa_id", "size", "bytes", "stored at"], (
        [f"![{cell(row.nasa_id)}]({thumbnails[row.nasa_id]})" if row.nasa_id in thumbnails else "",
         cell(row.nasa_id), f"{row.width}x{row.height} {row.format}", row.bytes,
         f"[{row.image_key}]({row.image_uri})"]
        for row in stored.itertuples()
    )))
