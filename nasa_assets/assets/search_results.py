import dagster as dg

from nasa_assets import tables
from nasa_assets.assets.pages import PAGE_ASSET_OPTIONS, record_page_metadata, single_or_dict
from nasa_assets.nasa.parsing import parse_items
from nasa_assets.partitions import PAGE_SIZE, page_number
from nasa_assets.resources import NasaApiResource


@dg.asset(
    **PAGE_ASSET_OPTIONS,
    pool="nasa_api",
    kinds={"python", "parquet"},
)
def search_results(context: dg.AssetExecutionContext, nasa: NasaApiResource):
    """Every item of one search page (100 per page), parsed into columns, with its raw JSON.

    A page past the last hit is an empty table, not an error."""
    client = nasa.client()
    frames, per_page = {}, {}
    for key in context.partition_keys:
        page = client.search_page(nasa.query, page_number(key), PAGE_SIZE)
        rows = parse_items(page.items, page_number(key))
        frames[key] = tables.frame("search_results", rows)
        # Past the API's cap the answer carries no total: None, not a made-up number.
        per_page[key] = {"row_count": len(rows), "total_hits": None if page.exhausted else page.total_hits}
        context.log.info(f"page {key}: {len(rows)} items (total_hits {page.total_hits})")
    record_page_metadata(context, per_page)
    return dg.Output(
        single_or_dict(frames),
        metadata={
            "query": nasa.query,
            "pages_in_run": list(frames),
            "empty_pages_in_run": [k for k, m in per_page.items() if not m["row_count"]],
            "api_requests": client.api_requests,
        },
    )
