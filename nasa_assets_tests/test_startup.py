"""What `python -m nasa_assets run` prints before the run, without connecting to the store."""

from dagster_aws.s3 import S3Resource

from nasa_assets.resources import LocalDatasetStorage, S3DatasetStorage


def test_root_uri_is_the_store_root_for_s3_without_a_client(s3_server, s3_bucket):
    storage = S3DatasetStorage(s3=S3Resource(endpoint_url=s3_server), bucket=s3_bucket, prefix="moon/data")
    assert storage.root_uri() == f"s3://{s3_bucket}/moon/data"
    assert storage._store is None  # no boto3 client was made for it
    assert storage.root_uri() == storage.store().root_uri
    bare = S3DatasetStorage(s3=S3Resource(endpoint_url=s3_server), bucket=s3_bucket, prefix="")
    assert bare.root_uri() == bare.store().root_uri == f"s3://{s3_bucket}"


def test_root_uri_of_a_local_folder(tmp_path):
    storage = LocalDatasetStorage(root=str(tmp_path / "data"))
    assert storage.root_uri() == (tmp_path / "data").resolve().as_uri() == storage.store().root_uri
