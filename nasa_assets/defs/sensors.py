"""The refresh sensor: re-materialize the search pages whose results changed at NASA, and repair
the pages that failed."""

import json
import os
import time

import dagster as dg
import requests

from nasa_assets.dataset.pages import PAGE_KEYS, PAGE_SIZE, page_key
from nasa_assets.dataset.refresh import (
    DEFAULT_DROP_SHARE,
    Decision,
    RefreshState,
    decide,
    item_ids,
    last_page,
    pages_to_check,
)
from nasa_assets.dataset.repair import (
    Backoff,
    LastImages,
    LastRun,
    PageHealth,
    RepairPlan,
    RepairPolicy,
    page_health,
    plan_repairs,
)
from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.pages import MOON, key_of
from nasa_assets.defs.jobs import moon_images_job
from nasa_assets.defs.resources import NasaApiResource
from nasa_assets.defs.settings import repair_policy_from_env, total_hits_drop_share
from nasa_assets.defs.settings_spec import SETTINGS
from nasa_assets.nasa.errors import NasaApiError

INTERVAL_VARIABLE = "NASA_SENSOR_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = SETTINGS[INTERVAL_VARIABLE].default
SENSOR_NAME = MOON.sensor
# Newest runs of the job read per tick to find each page's last run: one bounded query.
RUN_HISTORY = 500
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def interval_seconds(env=os.environ) -> int:
    return SETTINGS[INTERVAL_VARIABLE].read(env)


def _observe(client, query: str, previous: RefreshState | None, drop_share: float) -> Decision:
    """Fetch page 1 and the pages the decision needs (two requests when the total is unchanged)."""
    first = client.search_page(query, 1, PAGE_SIZE)
    fetched = {1: item_ids(first.items)}
    for page in pages_to_check(previous, first.total_hits, fetched[1], drop_share):
        fetched[page] = item_ids(client.search_page(query, page, PAGE_SIZE).items)
    return decide(previous, first.total_hits, fetched, drop_share)


# -- the cursor: the refresh state (nasa_assets/dataset/refresh_state.py) plus each broken page's backoff -------


def read_cursor(cursor: str | None, warn=None) -> tuple[RefreshState | None, dict[str, Backoff]]:
    """ValueError for a cursor this version cannot read. Unreadable repair state alone costs only
    the backoff (``warn`` says so), not a first tick's full refresh."""
    previous = RefreshState.from_cursor(cursor)
    if previous is None:
        return None, {}
    try:
        repair = json.loads(cursor).get("repair") or {}
        return previous, {str(k): Backoff.from_json(v) for k, v in repair.items()}
    except (ValueError, TypeError, AttributeError) as error:
        if warn is not None:
            warn(f"unreadable repair state in the cursor ({error}); backoff starts over")
        return previous, {}


def write_cursor(state: RefreshState, backoff: dict[str, Backoff]) -> str:
    data = {**state.to_json(), "repair": {k: b.to_json() for k, b in sorted(backoff.items())}}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# -- what the instance knows about each page ----------------------------------------------------


def _pages_of(tags) -> list[str]:
    if key := tags.get("dagster/partition"):
        return [key]
    start, end = (tags.get(t) for t in RANGE_TAGS)
    return [k for k in PAGE_KEYS if start <= k <= end] if start and end else []


def page_states(
    instance: dg.DagsterInstance, in_range: int, spec: DatasetSpec = MOON
) -> tuple[list[PageHealth], set[str]]:
    """Each page's health (of `spec`'s dataset), and the pages with a queued or running run:
    three queries in all."""
    busy: set[str] = set()
    last_runs: dict[str, LastRun] = {}
    images_key = key_of(spec, "moon_images")
    runs_filter = dg.RunsFilter(job_name=spec.images_job)
    for record in instance.get_run_records(filters=runs_filter, limit=RUN_HISTORY):  # newest first
        run = record.dagster_run
        if run.status not in FINISHED:
            busy.update(_pages_of(run.tags))
            continue
        ended = record.end_time or record.update_timestamp.timestamp()
        for key in _pages_of(run.tags):
            last_runs.setdefault(key, LastRun(run.run_id, run.status.value, ended))

    latest = instance.get_latest_storage_id_by_partition(
        images_key, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    images: dict[str, LastImages] = {}
    if latest:
        records_filter = dg.AssetRecordsFilter(asset_key=images_key, storage_ids=list(latest.values()))
        for record in instance.fetch_materializations(records_filter, limit=len(latest)).records:
            failed = record.asset_materialization.metadata.get("failed")
            count = int(failed.value or 0) if isinstance(failed, dg.IntMetadataValue) else 0
            images[record.partition_key] = LastImages(record.run_id, count, record.timestamp)

    hit_range = {page_key(p) for p in range(1, in_range + 1)}
    keys = sorted((hit_range | set(last_runs) | set(images)) & set(PAGE_KEYS))
    health = [page_health(k, last_runs.get(k), images.get(k), k in hit_range) for k in keys]
    return health, busy


def _repair(context, decision: Decision, backoff, policy: RepairPolicy,
            spec: DatasetSpec) -> RepairPlan | None:
    if policy.max_runs_per_tick <= 0:
        return None  # repairs turned off
    health, busy = page_states(context.instance, last_page(decision.state.total_hits), spec)
    return plan_repairs(health, busy, backoff, time.time(), policy, requested=decision.affected)


def refresh_sensor(
    interval: int = DEFAULT_INTERVAL_SECONDS,
    drop_share: float = DEFAULT_DROP_SHARE,
    policy: RepairPolicy = RepairPolicy(),
    spec: DatasetSpec = MOON,
    job=moon_images_job,
) -> dg.SensorDefinition:
    """The refresh sensor of a dataset (`spec`, whose page job is `job`) with these settings (the
    project's come from the environment): nasa_search_refresh for moon, `<name>_search_refresh`
    for another dataset."""

    @dg.sensor(
        name=spec.sensor,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def nasa_search_refresh(context: dg.SensorEvaluationContext, nasa: NasaApiResource):
        """Requests runs of the dataset's page job (moon_images_job for moon) for the search pages
        whose results changed at NASA, and for the pages that need repair.

        Each tick fetches search page 1 and one more page, and compares them with the cursor
        (versioned JSON: total_hits, and count + sha256 of the ordered nasa_ids of each page seen).
        While total_hits stays the same, pages 2..last take turns as that second page, so every
        page is compared within (last - 1) ticks; when it changed, the old and new last pages are
        read (3 requests at most). See nasa_assets/dataset/refresh.py for which pages count as affected.
        A sudden drop of total_hits is acted on only when a later tick sees it again. The first
        tick, with an empty cursor, requests every page that exists (up to 100): this sensor ships
        stopped and is meant to be turned on deliberately. When the API fails, the tick is skipped
        with the error and the cursor is kept.

        Repairs (nasa_assets/repair.py): pages whose last run failed or was canceled, whose
        moon_images has failed images, or that are inside the hit range and were never
        materialized, with per-page exponential backoff and a bound on runs per tick.
        """
        try:
            previous, backoff = read_cursor(context.cursor, context.log.warning)
        except ValueError as error:
            context.log.warning(f"{error}; starting over as on a first tick")
            previous, backoff = None, {}

        client = nasa.probe_client()
        try:
            wait = client.rate_limiter.wait_time()
            if wait > 0:
                return dg.SensorResult(
                    skip_reason=f"NASA API request budget exhausted for {wait:.0f} s; cursor kept"
                )
            decision = _observe(client, spec.query or nasa.query, previous, drop_share)
        except (NasaApiError, requests.RequestException, OSError) as error:
            # The client's messages never carry the API key; cursor=None keeps the stored cursor.
            return dg.SensorResult(
                skip_reason=f"NASA search API failed, cursor kept: {type(error).__name__}: {error}"
            )
        finally:
            client.close()

        context.log.info(decision.reason)
        if decision.suspicious:  # a search answer not trusted yet: no run of any kind
            cursor = write_cursor(decision.state, backoff)
            return dg.SensorResult(skip_reason=decision.reason, cursor=cursor)
        plan = _repair(context, decision, backoff, policy, spec)
        repairs = plan.runs if plan else []
        cursor = write_cursor(decision.state, plan.state if plan else {})
        run_requests = [
            dg.RunRequest(partition_key=key, run_key=decision.run_key(key))
            for key in decision.affected
        ] + [dg.RunRequest(partition_key=r.key, run_key=r.run_key, tags=r.tags) for r in repairs]
        if plan is not None:
            context.log.info(plan.summary())
        if not run_requests:
            reason = decision.reason if plan is None else f"{decision.reason}; {plan.summary()}"
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        return dg.SensorResult(run_requests=run_requests, cursor=cursor)

    return nasa_search_refresh


nasa_search_refresh = refresh_sensor(
    interval_seconds(), total_hits_drop_share(os.environ), repair_policy_from_env(os.environ)
)
