from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd

from nasa_assets import manifest, tables
from nasa_assets.assets.pages import PAGE_ASSET_OPTIONS, by_page, single_or_dict
from nasa_assets.keys import table_key
from nasa_assets.nasa.client import FetchError
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.resources import DatasetSettings, DatasetStorage, NasaApiResource
from nasa_assets.validation import manifest_problems

MANIFEST_VALID = "manifest_valid"


def _resolve_renditions(client, rows: list[dict], workers: int) -> list[tuple[dict, dict | None, str | None]]:
    """(row, renditions, failure) per row; collection.json look-ups run concurrently."""

    def resolve(row):
        listed = manifest.listed_renditions(row)
        if listed is not None:
            return row, listed, None
        if not row.get("collection_url"):
            return row, None, "no collection_url to list renditions"
        try:
            return row, manifest.renditions_from_links(
                [{"href": u, "render": "image"} for u in client.collection(row["collection_url"])]
            ), None
        except FetchError as error:
            return row, None, f"collection.json: {error.reason}"

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rows) or 1))) as pool:
        return list(pool.map(resolve, rows))


@dg.asset(
    **PAGE_ASSET_OPTIONS,
    kinds={"python", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            MANIFEST_VALID, asset="sampled_manifest", blocking=True,
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

    Rejected items are kept with their reason in <root>/rejected/<page>.parquet."""
    client, store = nasa.client(), storage.store()
    allowed = parse_allowed_hosts(nasa.allowed_hosts)
    frames, per_page, all_rejected = {}, {}, []
    for key, results in by_page(context, search_results).items():
        rows = tables.records(results)
        valid, rejected = manifest.screen(rows)
        kept = []
        for row, renditions, failure in _resolve_renditions(
            client, manifest.sample(valid, settings.sampling_factor), settings.download_concurrency
        ):
            entry, reason = (None, failure) if failure else manifest.attach_image(
                row, renditions, settings.rendition, allowed
            )
            if entry:
                kept.append(entry)
            else:
                rejected.append(manifest.rejected_row(row, reason))
        frames[key] = tables.frame("sampled_manifest", kept)
        # Written before the manifest itself, and always, so a rerun replaces stale rejections.
        store.write_parquet(table_key("rejected", key), tables.frame("rejected", rejected), table="rejected")
        per_page[key] = {"items": len(rows), "valid": len(valid), "sampled": len(kept),
                         "rejected": len(rejected)}
        all_rejected += rejected
        context.log.info(f"page {key}: {per_page[key]}")

    combined = pd.concat(frames.values(), ignore_index=True)
    problems = manifest_problems(combined, allowed)
    over_budget = {
        k: round(c["rejected"] / c["items"], 3) for k, c in per_page.items()
        if c["items"] and c["rejected"] / c["items"] > settings.max_rejected_fraction
    }
    if over_budget:
        problems.append(
            f"rejected share above MAX_REJECTED_FRACTION={settings.max_rejected_fraction}: {over_budget}"
        )
    reasons = manifest.reason_counts(all_rejected)
    yield dg.Output(
        single_or_dict(frames),
        metadata={
            "row_count": len(combined),
            "items": sum(c["items"] for c in per_page.values()),
            "sampled": len(combined),
            "rejected": len(all_rejected),
            "rejected_reasons": reasons,
            "per_page": per_page,
            "sampling_factor": settings.sampling_factor,
            "rejected_uris": [store.uri(table_key("rejected", k)) for k in frames],
            "preview": dg.MetadataValue.md(_preview(combined)),
        },
    )
    yield dg.AssetCheckResult(
        check_name=MANIFEST_VALID,
        passed=not problems,
        metadata={
            "problems": problems,
            "rejected_share": {k: round(c["rejected"] / c["items"], 3) if c["items"] else 0.0
                               for k, c in per_page.items()},
            "rejected_examples": [
                {"page": r["page"], "position": r["position"], "nasa_id": r["nasa_id"], "reason": r["reason"]}
                for r in all_rejected[:5]
            ],
        },
    )


def _preview(frame: pd.DataFrame, limit: int = 5) -> str:
    if frame.empty:
        return "_no sampled items_"
    lines = ["| nasa_id | title | rendition |", "|---|---|---|"]
    for row in frame.head(limit).itertuples():
        title = str(row.title).replace("|", "/")[:80]
        lines.append(f"| {row.nasa_id} | {title} | [{row.rendition}]({row.image_url}) |")
    return "\n".join(lines)
