"""Building blocks of the integration tests: environments and materializations against the double."""

import contextlib
import hashlib
import io
import os
import shutil
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pandas as pd
from PIL import Image

from nasa_assets.defs.assets.moon_images import moon_images
from nasa_assets.defs.assets.sampled_manifest import sampled_manifest
from nasa_assets.defs.assets.search_results import search_results
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.storage.local import INCOMING

PAGE_ASSETS = [search_results, sampled_manifest, moon_images]


def double_env(double, **extra) -> dict[str, str]:
    """Settings that point the project at a NasaDouble."""
    return {"NASA_API_BASE_URL": double.base_url, "NASA_ALLOWED_HOSTS": double.host, **extra}


def local_env(double, root, **extra) -> dict[str, str]:
    return double_env(double, NASA_ASSETS_LOCAL_DIR=str(root), **extra)


def s3_env(double, endpoint: str, bucket: str, prefix: str = "moon_dataset", **extra) -> dict[str, str]:
    return double_env(double, S3_BUCKET_NAME=bucket, S3_KEY_PREFIX=prefix, AWS_ENDPOINT_URL=endpoint, **extra)


def materialize_pages(env: dict, first: str, last: str | None = None, instance=None, assets=None):
    """One in-process run of the page assets over first..last (a single-run range)."""
    resources = resources_from_env(env)
    tags = {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first}
    return dg.materialize(
        assets or PAGE_ASSETS, resources=resources, instance=instance, tags=tags, raise_on_error=False
    )


def read_table(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def assert_image_matches(data: bytes, row) -> None:
    """The stored bytes are what the table says: size, sha256, a decodable image of that size."""
    assert len(data) == row["bytes"]
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (row["width"], row["height"])
        assert image.format == row["format"]


class LocalReader:
    """Reads what a run left in a local dataset root, independently of the project's store."""

    def __init__(self, root):
        self.root = root

    def keys(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    def image_keys(self) -> list[str]:
        folder = self.root / "images"
        return sorted(f"images/{p.name}" for p in folder.iterdir()) if folder.exists() else []

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    def fingerprints(self, keys) -> dict[str, bytes]:
        """What tells an object changed: here its bytes."""
        return {k: self.get(k) for k in keys}

    def uri(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()


class S3Reader:
    """Reads what a run left under a bucket prefix, with a plain boto3 client."""

    def __init__(self, client, bucket, prefix):
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def _objects(self, prefix: str) -> list[dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o for page in pages for o in page.get("Contents", [])]

    def _list(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self._objects(prefix)]

    def keys(self) -> set[str]:
        keys = self._list("")
        assert all(k.startswith(self.prefix + "/") for k in keys), keys
        return {k[len(self.prefix) + 1:] for k in keys}

    def image_keys(self) -> list[str]:
        return sorted(k[len(self.prefix) + 1:] for k in self._list(f"{self.prefix}/images/"))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()

    def exists(self, key: str) -> bool:
        return f"{self.prefix}/{key}" in self._list(f"{self.prefix}/{key}")

    def fingerprints(self, keys) -> dict[str, tuple]:
        """What tells an object changed, from one listing instead of a GET per object: its ETag
        (the MD5 of its bytes), size and last-modified time (which a rewrite of the same bytes
        changes too, when it comes a second or more later: moto keeps whole seconds)."""
        listed = {o["Key"][len(self.prefix) + 1:]: (o["ETag"], o["Size"], o["LastModified"])
                  for o in self._objects(self.prefix + "/")}
        return {k: listed.get(k) for k in keys}

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{key}"


def copy_folder(env: dict, root, copy) -> dict:
    """Copy a local dataset root (files and their extended attributes) to `copy`; returns `env`
    pointing at the copy."""
    shutil.copytree(root, copy)
    return {**env, "NASA_ASSETS_LOCAL_DIR": str(copy)}


def new_bucket(client) -> str:
    """Name of a fresh, empty bucket."""
    name = f"nasa-test-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return name


def copy_bucket(client, source: str) -> str:
    """A fresh bucket holding a server-side copy (CopyObject: same bytes and metadata) of every
    object of `source`, under the same keys."""
    target = new_bucket(client)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=source):
        for obj in page.get("Contents", []):
            client.copy_object(Bucket=target, Key=obj["Key"],
                               CopySource={"Bucket": source, "Key": obj["Key"]})
    return target


def answering(body: bytes, content_type: str, with_length: bool = True):
    """A request handler that answers every GET with ``body`` (without Content-Length, and closing
    the connection, when ``with_length`` is false)."""

    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length" if with_length else "Connection",
                             str(len(body)) if with_length else "close")
            self.end_headers()
            self.wfile.write(body)

    return Answer


@contextlib.contextmanager
def serving(handler):
    """A throwaway HTTP server on 127.0.0.1 with `handler`; yields its "127.0.0.1:port"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


REQUIRE_SERVICES = "NASA_ASSETS_REQUIRE_SERVICES"


def skip_unless_required(reason: str) -> None:
    """Skip a test whose system service is missing; fail instead where the run requires every
    service (.ci/run sets NASA_ASSETS_REQUIRE_SERVICES=1), so CI cannot pass by skipping."""
    import pytest

    if os.environ.get(REQUIRE_SERVICES) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES}=1: required here)")
    pytest.skip(reason)


def no_incoming(root) -> bool:
    """True when a LocalStore at root holds no half-written file."""
    incoming = root / INCOMING
    return not incoming.exists() or not any(incoming.iterdir())


def image_row(table, nasa_id) -> dict:
    """The one row of a moon_images table for nasa_id."""
    [row] = table[table["nasa_id"] == nasa_id].to_dict("records")
    return row


def _tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


class Trap:
    """An HTTP server on another 127.0.0.1 port that counts every request it gets."""

    def __init__(self):
        trap = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                trap.requests.append(f"{self.command} {self.path}")
                body = _tiny_jpeg()
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
