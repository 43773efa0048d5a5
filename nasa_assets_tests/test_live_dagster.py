"""The three ways people run nasa_assets, each against a real `dagster dev` (webserver + daemon):
`dagster job launch`, the refresh sensor through the daemon, and the UI in a real browser.

All three share one `dagster dev` (see live.py), the NASA double (250 hits: pages 0001-0003) and a
moto bucket. The launch works on page 0003, the sensor on 0003-0004 (it appends hits to the double),
the browser on 0002; the assertions hold in any order.
"""

import json
import re
import time
import uuid
from pathlib import Path


from nasa_assets.dataset.refresh import decide, item_ids, last_page
from nasa_assets_tests.helpers import skip_unless_required
from nasa_assets_tests.live import (
    LOCATION,
    REPOSITORY,
    ROOT,
    WORKSPACE,
    fixture_live_dagster,  # noqa: F401  (the live_dagster fixture)
)

SENSOR = "nasa_search_refresh"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
TICKS_QUERY = """
query Ticks($sensor: SensorSelector!) {
  sensorOrError(sensorSelector: $sensor) {
    __typename
    ... on Sensor {
      sensorState { status ticks(limit: 20) { status skipReason runKeys timestamp error { message } } }
    }
    ... on PythonError { message }
  }
}
"""


def test_dagster_job_launch_runs_a_page_through_the_daemon(live_dagster):
    run_id = str(uuid.uuid4())
    live_dagster.cli(
        "job", "launch", "-w", WORKSPACE, "-j", "moon_images_job",
        "--tags", json.dumps({"dagster/partition": "0003"}), "--run-id", run_id,
    )
    live_dagster.assert_success(run_id)

    images = live_dagster.assert_page_stored("0003")
    assert len(images) >= 1
    # Page 3 holds hits 201-300: 50 of the double's 250 (more if the sensor test added some).
    expected_rows = min(100, live_dagster.double.total_hits - 200)
    assert len(live_dagster.table("search_results", "0003")) == expected_rows
    run = {r["run_id"]: r for r in live_dagster.runs({"dagster/partition": "0003"})}[run_id]
    assert run["status"] == "SUCCESS"


def _ticks(live) -> dict:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR}
    result = live.graphql(TICKS_QUERY, {"sensor": selector})["sensorOrError"]
    assert result["__typename"] == "Sensor", result
    return result["sensorState"]


def _cursor_for_current_results(double) -> str:
    """The cursor a tick would store for what the double serves now (what a first tick computes)."""
    ids = item_ids(double.corpus())
    fetched = {p: ids[(p - 1) * 100 : p * 100] for p in {1, last_page(len(ids))}}
    return decide(None, len(ids), fetched).state.to_cursor()


def test_sensor_requests_runs_for_the_affected_pages_through_the_daemon(live_dagster):
    double = live_dagster.double
    assert double.total_hits == 250
    # The sensor's state = what it has seen: the current results (set with the CLI, as a user
    # who wants to skip the first tick's full refresh would).
    cursor = _cursor_for_current_results(double)
    live_dagster.cli("sensor", "cursor", "-w", WORKSPACE, SENSOR, "--set", cursor)
    double.insert_items(60, at=250)  # 60 new hits at the end: page 0003 fills up, 0004 appears

    started = time.time()
    live_dagster.cli("sensor", "start", "-w", WORKSPACE, SENSOR)
    try:
        tags = {"dagster/sensor_name": SENSOR}
        runs = live_dagster.wait_until(
            "two sensor runs to finish",
            lambda: (r := live_dagster.runs(tags)) and len(r) >= 2
            and all(x["status"] in ("SUCCESS", "FAILURE", "CANCELED") for x in r) and r,
            240,
        )
        for run in runs:
            assert run["status"] == "SUCCESS", (run, live_dagster.run_errors(run["run_id"]))
        assert sorted(r["tags"]["dagster/partition"] for r in runs) == ["0003", "0004"]
        assert all(r["tags"]["dagster/run_key"].startswith(f"page-{r['tags']['dagster/partition']}-")
                   for r in runs)

        # The next tick sees the same results: it skips, and no further run is requested.
        skipped = live_dagster.wait_until(
            "a tick that finds no change",
            lambda: [t for t in _ticks(live_dagster)["ticks"]
                     if t["status"] == "SKIPPED" and t["timestamp"] > started
                     and "no change" in (t["skipReason"] or "")],
            60,
        )
        assert "310 hits" in skipped[0]["skipReason"]
        assert len(live_dagster.runs(tags)) == 2
    finally:
        live_dagster.cli("sensor", "stop", "-w", WORKSPACE, SENSOR)
    assert _ticks(live_dagster)["status"] == "STOPPED"

    for page in ("0003", "0004"):
        live_dagster.assert_page_stored(page)
    assert len(live_dagster.table("search_results", "0004")) == 10


def test_ui_materializes_a_page_with_its_upstream_in_a_real_browser(live_dagster, tmp_path):
    if not CHROMIUM.exists():
        skip_unless_required(
            f"{CHROMIUM} not found: the browser test drives Debian's Chromium "
            "(apt-get install chromium; .ci/run installs it in CI)"
        )
    from playwright.sync_api import expect, sync_playwright

    url, timeout = live_dagster.url, 60_000
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900},
        )
        try:
            # A UI on 2 busy cores can take longer than Playwright's 5 s to render a dialog.
            context.set_default_timeout(timeout)
            expect.set_options(timeout=timeout)
            page = context.new_page()
            page.goto(f"{url}/assets/moon_images", wait_until="domcontentloaded")
            expect(page.get_by_role("button", name="Materialize…")).to_be_visible()

            # The asset's lineage, all the way upstream; "Materialize all" then covers
            # search_results, sampled_manifest and moon_images.
            page.get_by_role("tab", name="Lineage").click()
            page.get_by_role("button", name="Upstream").click()
            page.get_by_role("button", name="All", exact=True).click()
            expect(page.get_by_text("search_results", exact=True)).to_be_visible()
            page.get_by_role("button", name="Materialize all…").click()

            dialog = page.locator(".dagster-dialog")
            expect(dialog.get_by_text("Launch runs to materialize 3 assets")).to_be_visible()
            dialog.get_by_text("Select a partition or create one").click()
            picker = page.locator(".dagster-popover")
            picker.get_by_placeholder("Filter partitions").fill("0002")
            picker.get_by_role("menuitem", name=re.compile(r"^0002")).click()
            dialog.get_by_text("Launch runs to materialize 3 assets").click()  # close the picker
            expect(picker).to_be_hidden()
            expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "moon_images_launch_dialog.png"))
            dialog.get_by_role("button", name="Launch 1 run").click()

            # The toast links to the run; its page turns to Success when the daemon has run it.
            toasts = page.get_by_role("region", name=re.compile("Notifications"))
            view = toasts.get_by_role("link", name="View")
            href = view.get_attribute("href")
            run_id = href.rsplit("/", 1)[-1]
            view.click()
            expect(page.get_by_text("partition: 0002")).to_be_visible()
            expect(page.get_by_text("3 assets", exact=True)).to_be_visible()
            expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=180_000)

            page.goto(f"{url}/assets/moon_images", wait_until="domcontentloaded")
            expect(page.get_by_text("Latest materialization")).to_be_visible()
            expect(page.get_by_text(re.compile(r"(seconds?|minutes?) ago$")).first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "moon_images_asset.png"))
        finally:
            expect.set_options(timeout=None)
            context.close()

    assert live_dagster.wait_for_run(run_id) == "SUCCESS"
    run = {r["run_id"]: r for r in live_dagster.runs({"dagster/partition": "0002"})}[run_id]
    assert run["status"] == "SUCCESS"
    images = live_dagster.assert_page_stored("0002")
    assert len(images) >= 1
    assert len(live_dagster.table("search_results", "0002")) == 100
