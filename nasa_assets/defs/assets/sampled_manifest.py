from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd

from nasa_assets.dataset import manifest, markdown, tables
from nasa_assets.dataset.pages import page_ranges
from nasa_assets.dataset.validation import manifest_problems, rejection_budget
from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.pages import MOON, key_of, page_asset_options, page_output
from nasa_assets.defs.io_manager import dataset_store, sibling, table_path
from nasa_assets.defs.resources import DatasetSettings, DatasetStorage, NasaApiResource, resolved
from nasa_assets.nasa.errors import FetchError

MANIFEST_VALID = "manifest_valid"


def _earlier_choices(
    pool: ThreadPoolExecutor, store, asset_key: dg.AssetKey, pages: list[str]
) -> tuple[dict[str, tuple[str, str, str]], int]:
    """nasa_id -> (raw, rendition, image_url) from the manifests these pages had before, read
    concurrently; an item that moved to another page of the run is found too. A URL whose download
    failed as gone (HTTP 403/404/410 in the pages' moon_images) is not reused: (choices, forgotten)."""

    def read(key):
        try:
            return store.read_parquet(key)
        except (FileNotFoundError, ValueError):  # never materialized, or unreadable: look up again
            return None

    keys = [table_path(key, page) for key in (asset_key, sibling(asset_key, "moon_images")) for page in pages]
    frames = list(pool.map(read, keys))
    choices, images = {}, []
    for earlier in frames[:len(pages)]:
        if earlier is not None and not earlier.empty:
            columns = earlier[["nasa_id", "raw", "rendition", "image_url"]].itertuples(index=False)
            choices.update((nasa_id, (raw, rendition, url)) for nasa_id, raw, rendition, url in columns)
    for table in frames[len(pages):]:
        if table is not None and not table.empty:
            images += table[["nasa_id", "source_url", "status", "error"]].to_dict("records")
    return manifest.forget_gone_urls(choices, images)


def _resolve_renditions(
    pool: ThreadPoolExecutor, client, rows: list[dict], earlier: dict, preferred: str, breaker=None
) -> list[tuple[dict, dict | None, str | None, bool]]:
    """(row, renditions, failure, looked up on the file host) per row.

    Format 1.1 items list their renditions. A format 1.0 item whose raw JSON is unchanged since the
    earlier manifest chose the preferred rendition for it keeps that choice; the collection.json
    look-ups of the others run concurrently."""

    def resolve(row):
        listed = manifest.listed_renditions(row)
        if listed is not None:
            return row, listed, None, False
        raw, rendition, url = earlier.get(row["nasa_id"], (None, None, None))
        if raw == row["raw"] and rendition == preferred:
            return row, {rendition: url}, None, False
        if not row.get("collection_url"):
            return row, None, "no collection_url to list renditions", False
        try:
            return row, manifest.renditions_from_links(
                [{"href": u, "render": "image"} for u in client.collection(row["collection_url"], breaker)]
            ), None, True
        except FetchError as error:
            return row, None, f"collection.json: {error.reason}", True

    return list(pool.map(resolve, rows))


def sampled_manifest_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """sampled_manifest of one dataset, with its blocking check."""

    @dg.asset(
        **page_asset_options(spec),
        kinds={"python", "parquet"},
        ins={"search_results": dg.AssetIn(key=key_of(spec, "search_results"))},
        check_specs=[
            dg.AssetCheckSpec(
                MANIFEST_VALID, asset=key_of(spec, "sampled_manifest"), blocking=True,
                description="Rows hold the manifest invariants and few enough items were rejected; "
                "blocks image downloads for the page otherwise.",
            )
        ],
    )
    def sampled_manifest(
        context: dg.AssetExecutionContext,
        search_results,
        nasa: NasaApiResource,
        settings: DatasetSettings,
        storage: DatasetStorage,
    ):
        """The sampled, valid items of a page with the image rendition chosen for each.

        Rejected items are kept with their reason in `rejected/<page>.parquet` of the dataset root."""
        ds = resolved(spec, nasa, settings)
        yield from sample_pages(context, search_results, nasa, settings, storage, ds)

    return sampled_manifest


def sample_pages(context: dg.AssetExecutionContext, search_results, nasa: NasaApiResource,
                 settings: DatasetSettings, storage: DatasetStorage, ds: DatasetSpec):
    client, store = nasa.client(), dataset_store(storage, context.asset_key)
    breaker = client.new_breaker()  # one per step: an outage stops all of its look-ups
    allowed = nasa.hosts()
    pages = {key: tables.records(results) for key, results in search_results.items()}
    rejected_key = sibling(context.asset_key, "rejected")
    screened = {key: manifest.screen(rows) for key, rows in pages.items()}
    sampled = {key: manifest.sample(valid, ds.sampling_factor) for key, (valid, _) in screened.items()}
    # One pool for all pages of the run, so look-ups of a page range have no tail per page.
    with ThreadPoolExecutor(max_workers=settings.download_concurrency) as pool:
        earlier, forgotten = _earlier_choices(pool, store, context.asset_key, list(pages))
        resolved = iter(_resolve_renditions(
            pool, client, [row for rows in sampled.values() for row in rows], earlier, ds.rendition,
            breaker,
        ))
    frames, per_page, all_rejected, looked_up = {}, {}, [], 0
    for key, rows in pages.items():
        valid, rejected = screened[key]
        kept = []
        for _ in sampled[key]:
            row, renditions, failure, fetched = next(resolved)
            looked_up += fetched
            entry, reason = (None, failure) if failure else manifest.attach_image(
                row, renditions, ds.rendition, allowed
            )
            if entry:
                kept.append(entry)
            else:
                rejected.append(manifest.rejected_row(row, reason))
        frames[key] = tables.frame("sampled_manifest", kept)
        # Written before the manifest itself, and always, so a rerun replaces stale rejections.
        rejected_rows = tables.frame("rejected", rejected)
        tables.write_table(store, table_path(rejected_key, key), "rejected", rejected_rows)
        per_page[key] = {"items": len(rows), "valid": len(valid), "sampled": len(kept),
                         "rejected": len(rejected), "row_count": len(kept),
                         "unresolved": len(sampled[key]) - len(kept)}
        all_rejected += rejected
    context.log.info(_summary(per_page))
    context.log.info(f"{looked_up} collection.json look-ups (other items list their renditions, "
                     f"or are unchanged since the earlier manifest); {forgotten} earlier image URLs not "
                     f"reused because they failed with HTTP 403/404/410")

    combined = pd.concat(frames.values(), ignore_index=True)
    problems = manifest_problems(combined, allowed)
    budget, rejected_share, unresolved_share = rejection_budget(per_page, settings.max_rejected_fraction)
    problems += budget
    reasons = manifest.reason_counts(all_rejected)
    yield page_output(
        context, frames,
        {k: c | {"rejected_uri": dg.MetadataValue.path(store.uri(table_path(rejected_key, k)))}
         for k, c in per_page.items()},
        {
            "rejected_reasons": reasons,
            # Items whose text the parser cleaned (control characters removed, over-long text cut).
            "normalised": manifest.normalisation_counts([r for rows in pages.values() for r in rows]),
            "pages_in_run": per_page,
            "sampling_factor": ds.sampling_factor,
            "collection_lookups": looked_up,
            "gone_urls_not_reused": forgotten,
            **breaker.metadata(),
            "preview": dg.MetadataValue.md(_preview(combined)),
        },
    )
    yield dg.AssetCheckResult(
        check_name=MANIFEST_VALID,
        passed=not problems,
        metadata={
            "problems": problems,
            "rejected_share": rejected_share,
            "unresolved_share_of_sampled": unresolved_share,
            "rejected_examples": [
                {"page": r["page"], "position": r["position"], "nasa_id": r["nasa_id"], "reason": r["reason"]}
                for r in all_rejected[:5]
            ],
        },
    )


def _summary(per_page: dict[str, dict]) -> str:
    """One log line for the step's pages (a line per page would be an event per page in Dagster's
    storage; each page's figures are on its materialization), naming the pages that lost items."""
    names = ("items", "valid", "sampled", "rejected", "unresolved")
    totals = {name: sum(counts[name] for counts in per_page.values()) for name in names}
    lossy = [k for k, c in per_page.items() if c["rejected"]]
    return (f"pages {page_ranges(per_page)}: " + ", ".join(f"{v} {k}" for k, v in totals.items())
            + (f"; pages with rejected items: {page_ranges(lossy)}" if lossy else ""))


sampled_manifest = sampled_manifest_asset()


def _preview(frame: pd.DataFrame, limit: int = 5) -> str:
    if frame.empty:
        return "_no sampled items_"
    return "\n".join(markdown.table(["nasa_id", "title", "rendition"], (
        [markdown.cell(row.nasa_id), markdown.cell(str(row.title)[:80]),
         f"[{row.rendition}]({row.image_url})"]
        for row in frame.head(limit).itertuples()
    )))
