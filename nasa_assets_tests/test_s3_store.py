"""S3Store against moto's server: no partial object under a final key, no multipart upload left
behind, an overwrite that fails keeps the previous object."""

import hashlib
import io
import random

import pytest

from nasa_assets.storage import S3Store
from nasa_assets.storage.s3 import MULTIPART_THRESHOLD


MB = 1 << 20


class FailingSource(io.RawIOBase):
    """A seekable source of `size` bytes whose reads fail once past `fail_at`."""

    def __init__(self, size: int, fail_at: int):
        self.size, self.fail_at, self.pos = size, fail_at, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def tell(self):
        return self.pos

    def read(self, n=-1):
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        if self.pos + n > self.fail_at:
            raise ConnectionResetError("source went away mid-upload")
        self.pos += n
        return b"\x5a" * n


def assert_no_uploads_left(s3_client, bucket):
    uploads = s3_client.list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == []


@pytest.mark.parametrize("size, fail_at", [
    (40 * MB, 20 * MB),  # multipart: fails in the second part
    (2 * MB, 1 * MB),  # a single PUT
])
def test_s3_upload_failing_midway_leaves_no_object_and_no_upload(s3_client, s3_bucket, size, fail_at):
    store = S3Store(s3_client, s3_bucket, "moon_dataset")
    with pytest.raises(ConnectionResetError):
        store.put_file("images/big.jpg", FailingSource(size, fail_at))
    assert store.size("images/big.jpg") is None
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []
    assert_no_uploads_left(s3_client, s3_bucket)


def test_s3_failed_overwrite_keeps_the_previous_object(s3_client, s3_bucket):
    store = S3Store(s3_client, s3_bucket, "moon_dataset")
    store.put_bytes("images/big.jpg", b"complete image")
    with pytest.raises(ConnectionResetError):
        store.put_file("images/big.jpg", FailingSource(40 * MB, 20 * MB))
    assert store.get_bytes("images/big.jpg") == b"complete image"
    assert_no_uploads_left(s3_client, s3_bucket)


def test_s3_multipart_upload_stores_the_exact_bytes(s3_client, s3_bucket):
    data = random.Random(1).randbytes(MULTIPART_THRESHOLD + 3 * MB)
    store = S3Store(s3_client, s3_bucket, "moon_dataset")
    store.put_file("images/big.jpg", io.BytesIO(data), metadata={"sha256": "x"})
    assert hashlib.sha256(store.get_bytes("images/big.jpg")).digest() == hashlib.sha256(data).digest()
    assert store.metadata("images/big.jpg") == {"sha256": "x"}
    assert_no_uploads_left(s3_client, s3_bucket)
