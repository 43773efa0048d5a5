"""The refresh sensor: re-materialize the search pages whose results changed at NASA."""

import os

import dagster as dg
import requests

from nasa_assets.jobs import moon_images_job
from nasa_assets.nasa.client import NasaApiError
from nasa_assets.partitions import PAGE_SIZE
from nasa_assets.refresh import Decision, RefreshState, decide, item_ids, pages_to_check
from nasa_assets.resources import NasaApiResource

INTERVAL_VARIABLE = "NASA_SENSOR_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 3600


def interval_seconds(env=os.environ) -> int:
    value = env.get(INTERVAL_VARIABLE, "").strip()
    try:
        seconds = int(value) if value else DEFAULT_INTERVAL_SECONDS
    except ValueError:
        raise ValueError(
            f"{INTERVAL_VARIABLE} must be a whole number of seconds, got {value!r}"
        ) from None
    if seconds < 1:
        raise ValueError(f"{INTERVAL_VARIABLE} must be at least 1, got {seconds}")
    return seconds


def _observe(client, nasa: NasaApiResource, previous: RefreshState | None) -> Decision:
    """Fetch page 1 and the pages the decision needs (two requests when the total is unchanged)."""
    first = client.search_page(nasa.query, 1, PAGE_SIZE)
    fetched = {1: item_ids(first.items)}
    for page in pages_to_check(previous, first.total_hits, fetched[1]):
        fetched[page] = item_ids(client.search_page(nasa.query, page, PAGE_SIZE).items)
    return decide(previous, first.total_hits, fetched)


@dg.sensor(
    job=moon_images_job,
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def nasa_search_refresh(context: dg.SensorEvaluationContext, nasa: NasaApiResource):
    """Requests moon_images_job runs for the search pages whose results changed at NASA.

    Each tick fetches search page 1 and one more page, and compares them with the cursor
    (versioned JSON: total_hits, and count + sha256 of the ordered nasa_ids of each page seen).
    While total_hits stays the same, pages 2..last take turns as that second page, so every page
    is compared within (last - 1) ticks; when it changed, the old and new last pages are read
    (3 requests at most). See nasa_assets/refresh.py for which pages count as affected. The first tick, with an empty cursor, requests every page that exists (up to 100):
    this sensor ships stopped and is meant to be turned on deliberately. When the API fails, the
    tick is skipped with the error and the cursor is kept.
    """
    try:
        previous = RefreshState.from_cursor(context.cursor)
    except ValueError as error:
        context.log.warning(f"{error}; starting over as on a first tick")
        previous = None

    client = nasa.probe_client()
    try:
        wait = client.rate_limiter.wait_time()
        if wait > 0:
            return dg.SensorResult(
                skip_reason=f"NASA API request budget exhausted for {wait:.0f} s; cursor kept"
            )
        decision = _observe(client, nasa, previous)
    except (NasaApiError, requests.RequestException, OSError) as error:
        # The client's messages never carry the API key; cursor=None keeps the stored cursor.
        return dg.SensorResult(
            skip_reason=f"NASA search API failed, cursor kept: {type(error).__name__}: {error}"
        )
    finally:
        client.close()

    context.log.info(decision.reason)
    cursor = decision.state.to_cursor()
    if not decision.affected:
        return dg.SensorResult(skip_reason=decision.reason, cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=decision.run_key(key))
            for key in decision.affected
        ],
        cursor=cursor,
    )
