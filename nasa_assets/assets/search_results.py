import dagster as dg

from nasa_assets import tables
from nasa_assets.assets.pages import PAGE_ASSET_OPTIONS, single_or_dict
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
    frames, total_hits, empty = {}, None, []
    for key in context.partition_keys:
        page = client.search_page(nasa.query, page_number(key), PAGE_SIZE)
        rows = parse_items(page.items, page_number(key))
        frames[key] = tables.frame("search_results", rows)
        total_hits = page.total_hits if not page.exhausted else total_hits
        if not rows:
            empty.append(key)
        context.log.info(f"page {key}: {len(rows)} items (total_hits {page.total_hits})")
    return dg.Output(
        single_or_dict(frames),
        metadata={
            "query": nasa.query,
            "row_count": sum(len(f) for f in frames.values()),
            "total_hits": total_hits,
            "pages": list(frames),
            "empty_pages": empty,
            "api_requests": client.api_requests,
        },
    )
