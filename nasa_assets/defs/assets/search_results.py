import dagster as dg

from nasa_assets.dataset import tables
from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.dataset.pages import MAX_PAGES, PAGE_SIZE, fetch_pages, page_number, page_ranges
from nasa_assets.defs.assets.pages import MOON, page_asset_options, page_output
from nasa_assets.defs.resources import NasaApiResource
from nasa_assets.nasa.parsing import SearchPage, parse_items, short_page_problem


def fetch_checked_page(client, query: str, key: str, log, run_pages: int = 1) -> SearchPage:
    """A search page whose item count agrees with its total_hits. A short answer is asked again
    with the client's backoff, like a transient error; one that stays short fails the step
    before anything is returned, so no table of any page of the run is replaced."""
    for attempt in range(client.max_retries + 1):
        if attempt:
            client.pause(attempt - 1)
        page = client.search_page(query, page_number(key), PAGE_SIZE)
        problem = short_page_problem(page_number(key), page, PAGE_SIZE, MAX_PAGES)
        if problem is None:
            return page
        log.warning(f"{problem} (attempt {attempt + 1} of {client.max_retries + 1})")
    others = f", nor of the other {run_pages - 1} pages of this run" if run_pages > 1 else ""
    raise dg.Failure(
        description=f"{problem}; nothing of page {key} was overwritten{others}",
        metadata={"page": key, "attempts": client.max_retries + 1,
                  "items": len(page.items), "total_hits": page.total_hits},
    )


def search_results_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """search_results of one dataset; every dataset's search steps share the `nasa_api` pool."""

    @dg.asset(
        **page_asset_options(spec),
        pool="nasa_api",
        kinds={"python", "parquet"},
    )
    def search_results(context: dg.AssetExecutionContext, nasa: NasaApiResource):
        """Every item of one search page (100 per page), parsed into columns, with its raw JSON.

        A page past the last hit is an empty table, not an error. A page inside the hit range that
        answers fewer items than the hits imply fails the run and leaves the stored tables as they were."""
        return fetch_search_pages(context, nasa, spec.query or nasa.query)

    return search_results


def fetch_search_pages(
    context: dg.AssetExecutionContext, nasa: NasaApiResource, query: str
) -> dg.Output:
    client = nasa.client()
    keys = context.partition_keys
    # Every page is fetched and checked before any table is returned: one bad page fails the step.
    pages = fetch_pages(keys, lambda key: fetch_checked_page(client, query, key, context.log, len(keys)))
    frames, per_page = {}, {}
    for key, page in pages.items():
        rows = parse_items(page.items, page_number(key))
        frames[key] = tables.frame("search_results", rows)
        # Past the API's cap the answer carries no total: None, not a made-up number.
        per_page[key] = {"row_count": len(rows), "total_hits": None if page.exhausted else page.total_hits}
    # One line for the step, not one per page: each log line is an event Dagster writes to its
    # storage, and every page's figures are on its own materialization anyway.
    empty = [k for k, m in per_page.items() if not m["row_count"]]
    hits = {m["total_hits"] for m in per_page.values()} - {None}
    context.log.info(f"pages {page_ranges(per_page)}: {sum(m['row_count'] for m in per_page.values())} items"
                     f" (total_hits {', '.join(map(str, sorted(hits))) or 'none'})"
                     + (f"; empty: {page_ranges(empty)}" if empty else ""))
    return page_output(context, frames, per_page, {
        "query": query,
        "pages_in_run": list(frames),
        "empty_pages_in_run": empty,
        "api_requests": client.api_requests,
    })


search_results = search_results_asset()
