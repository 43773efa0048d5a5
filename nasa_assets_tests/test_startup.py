"""What `python -m nasa_assets run` prints before the run, without connecting to the store."""

import os
import subprocess
import sys

from dagster_aws.s3 import S3Resource

from nasa_assets.defs.resources import LocalDatasetStorage, S3DatasetStorage


def test_root_uri_is_the_store_root_for_s3_without_a_client(s3_server, s3_bucket):
    storage = S3DatasetStorage(s3=S3Resource(endpoint_url=s3_server), bucket=s3_bucket, prefix="moon/data")
    assert storage.root_uri() == f"s3://{s3_bucket}/moon/data"
    assert storage.root_uri("mars") == f"s3://{s3_bucket}/moon/data/mars"
    assert storage._stores == {}  # no boto3 client was made for it
    assert storage.root_uri() == storage.store().root_uri
    assert storage.root_uri("mars") == storage.store("mars").root_uri
    bare = S3DatasetStorage(s3=S3Resource(endpoint_url=s3_server), bucket=s3_bucket, prefix="")
    assert bare.root_uri() == bare.store().root_uri == f"s3://{s3_bucket}"
    assert bare.root_uri("mars") == bare.store("mars").root_uri == f"s3://{s3_bucket}/mars"


def test_root_uri_of_a_local_folder(tmp_path):
    storage = LocalDatasetStorage(root=str(tmp_path / "data"))
    assert storage.root_uri() == (tmp_path / "data").resolve().as_uri() == storage.store().root_uri
    assert storage.root_uri("mars") == (tmp_path / "data/mars").resolve().as_uri()


def test_one_s3_client_per_configuration_in_a_process(s3_server, s3_bucket):
    def storage(endpoint: str, prefix: str = "moon_dataset") -> S3DatasetStorage:
        return S3DatasetStorage(s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1"),
                                bucket=s3_bucket, prefix=prefix)

    first, again, other_prefix = storage(s3_server), storage(s3_server), storage(s3_server, "elsewhere")
    assert first.store().client is again.store().client is other_prefix.store().client
    assert other_prefix.store().root_uri == f"s3://{s3_bucket}/elsewhere"
    elsewhere = storage(s3_server.replace("127.0.0.1", "localhost"))
    assert elsewhere.store().client is not first.store().client
    assert elsewhere.store().client.meta.endpoint_url == s3_server.replace("127.0.0.1", "localhost")
    # The shared client works: a write through one store is read through another.
    first.store().put_bytes("probe.txt", b"shared")
    assert again.store().get_bytes("probe.txt") == b"shared"


def _allocators_after(module: str) -> list[str]:
    """What a fresh process that imports `module` and then makes a table allocates with."""
    code = (f"import os, {module}, pandas, pyarrow; pandas.DataFrame({{'a': [1]}}).to_parquet(os.devnull); "
            "print(pyarrow.default_memory_pool().backend_name, os.environ.get('MALLOC_ARENA_MAX'))")
    env = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_allocator_defaults_belong_to_the_code_location_not_to_a_reader_of_the_dataset():
    assert _allocators_after("nasa_assets.dataset")[0] != "system"  # pyarrow's own default stays
    assert _allocators_after("nasa_assets.definitions") == ["system", "None"]
