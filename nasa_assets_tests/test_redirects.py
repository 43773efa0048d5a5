"""Redirects and hosts: the client follows a redirect only to an allowed host, never sends the API
key along, bounds redirect loops, and a trap server standing in for every forbidden target
receives no request at all."""

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasa_assets.dataset.fetch import download_to_store
from nasa_assets.nasa.client import FetchError, NasaApiError, NasaClient
from nasa_assets.nasa.ratelimit import RateLimiter
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage import LocalStore
from nasa_assets_tests.nasa_double import RENDITION_DIMS

MB = 1 << 20


def client_for(nasa_double, **options) -> NasaClient:
    return NasaClient(base_url=nasa_double.base_url, allowed_hosts=parse_allowed_hosts(nasa_double.host),
                      rate_limiter=RateLimiter(1000), sleep=lambda s: None, **options)


@pytest.mark.parametrize("target", [
    "{trap}/search?q=moon&api_key=SEKRET", "file:///etc/passwd", "http://169.254.169.254/latest/",
])
def test_search_redirect_away_from_the_api_host_is_refused(nasa_double, trap, target):
    client = client_for(nasa_double, api_key="SEKRET")
    nasa_double.faults = {"search": [f"redirect:{target.format(trap=trap.url)}"]}
    with pytest.raises(NasaApiError, match="redirect away from the API host") as raised:
        client.search_page("moon", 1)
    assert "SEKRET" not in str(raised.value)
    assert trap.requests == []


def test_a_search_redirect_on_the_api_host_is_followed_without_the_api_key(nasa_double):
    client = client_for(nasa_double, api_key="SEKRET")
    location = f"{nasa_double.base_url}/search?q=moon&media_type=image&page=2&page_size=100"
    nasa_double.faults = {"search": [f"redirect:{location}"]}
    page = client.search_page("moon", 1)
    assert [r[1] for r in nasa_double.requests] == [
        "/search?q=moon&media_type=image&page=1&page_size=100&api_key=SEKRET",
        "/search?q=moon&media_type=image&page=2&page_size=100",
    ]
    assert [i["data"][0]["nasa_id"] for i in page.items] == [
        i["data"][0]["nasa_id"] for i in nasa_double.corpus()[100:200]
    ]


@pytest.mark.parametrize("target", [
    "{trap}/collection.json", "file:///etc/passwd", "http://10.0.0.1/collection.json",
    "http://[::1]:{port}/collection.json", "http://127.0.0.1.:{port}/collection.json",
    "http://user@{host}/collection.json", "{trap}:80/",
])
def test_collection_redirect_off_the_allowed_hosts_is_refused(nasa_double, trap, target):
    client = client_for(nasa_double)
    port = trap.host.rsplit(":", 1)[1]
    location = target.format(trap=trap.url, port=port, host=trap.host)
    nasa_double.faults = {"collection": [f"redirect:{location}"]}
    with pytest.raises(FetchError, match="^refused "):
        client.collection(nasa_double.corpus()[40]["href"])
    assert trap.requests == []


def test_redirect_loops_are_bounded(nasa_double):
    client = client_for(nasa_double)
    href = nasa_double.corpus()[40]["href"]
    nasa_double.faults = {"collection": [f"redirect:{href}"] * 20}
    with pytest.raises(FetchError, match="too many redirects"):
        client.collection(href)
    assert nasa_double.counts["collection"] == 6


def test_a_redirect_within_the_allowed_host_is_followed(nasa_double, tmp_path):
    client = client_for(nasa_double)
    a, b = (nasa_double.corpus()[i]["data"][0]["nasa_id"] for i in (40, 41))
    url_a = f"{nasa_double.base_url}/image/{a}/{a}~large.jpg"
    url_b = f"{nasa_double.base_url}/image/{b}/{b}~small.jpg"
    nasa_double.faults = {"image": [f"redirect:{url_b}"]}
    facts = download_to_store(client, LocalStore(tmp_path), url_a, "images/a.jpg", 10 * MB)
    assert (tmp_path / "images/a.jpg").read_bytes() == nasa_double.image_bytes_for(b, "small")
    assert (facts.width, facts.height) == RENDITION_DIMS["small"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=30))
def test_fetching_any_path_on_an_allowed_host_fails_only_with_fetch_error(nasa_double, path):
    """Whatever a response names, the client either fetches it or raises FetchError: never a crash."""
    client = client_for(nasa_double)
    try:
        client.collection(f"{nasa_double.base_url}/image/{path}")
    except FetchError as error:
        assert error.reason
    except requests.RequestException as error:  # pragma: no cover - the bug this test looks for
        pytest.fail(f"{type(error).__name__} escaped the client")
