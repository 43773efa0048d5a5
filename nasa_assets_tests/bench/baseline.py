"""The reference: a plain sequential requests + boto3 loop, run as its own process so its memory
is measured like every other path's.

    python -m nasa_assets_tests.bench.baseline --double URL --s3 URL --bucket B --pages N

Per search page, then per item: the item's own rendition link (format 1.1) or its collection.json
(format 1.0), the download, put_object; one connection. Prints "page NNNN done <seconds> <images>"
after each page, so the bench can read off the time of the first 500 images as well.
"""

from __future__ import annotations

import argparse
import sys
import time

import boto3
import requests


def image_url(session: requests.Session, item: dict, rendition: str = "large") -> str | None:
    """The simplest way to the item's image: its own links (format 1.1), else collection.json."""
    wanted = f"~{rendition}."
    for link in item.get("links", []):
        if wanted in link.get("href", "") and "size" in link:
            return link["href"]
    response = session.get(item["href"], timeout=60)
    if response.status_code != 200:
        return None
    urls = [u for u in response.json() if isinstance(u, str)]
    return next((u for u in urls if wanted in u), next((u for u in urls if u.endswith(".jpg")), None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.bench.baseline")
    parser.add_argument("--double", required=True)
    parser.add_argument("--s3", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="baseline")
    parser.add_argument("--pages", type=int, required=True)
    args = parser.parse_args(argv)
    s3 = boto3.client("s3", endpoint_url=args.s3, region_name="us-east-1")
    session = requests.Session()
    images = 0
    started = time.perf_counter()
    for page in range(1, args.pages + 1):
        body = session.get(f"{args.double}/search", timeout=60, params={
            "q": "moon", "media_type": "image", "page": page, "page_size": 100}).json()
        for item in body["collection"]["items"]:
            url = image_url(session, item)
            if url is None:
                continue
            response = session.get(url, timeout=60)
            if response.status_code != 200:
                continue
            nasa_id = item["data"][0]["nasa_id"]
            s3.put_object(Bucket=args.bucket, Key=f"{args.prefix}/images/{nasa_id}.jpg",
                          Body=response.content, ContentType="image/jpeg")
            images += 1
        print(f"page {page:04d} done {time.perf_counter() - started:.3f} {images}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
