"""S3 (or any S3-compatible) store on a boto3 client, as dagster-aws's S3 IO managers do it."""

from typing import BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from nasa_assets.storage.base import ObjectStore

# Below this a single PUT (one request); above, a multipart upload, which s3transfer aborts on
# failure, so no partial object ever appears under the key.
MULTIPART_THRESHOLD = 16 * 1024 * 1024


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


class S3Store(ObjectStore):
    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
            max_concurrency=4,
        )

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"key {key!r} escapes the storage root")
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_file(self, key, fileobj, *, content_type=None, metadata=None) -> None:
        extra = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = metadata
        start = fileobj.tell()
        fileobj.seek(0, 2)
        size = fileobj.tell() - start
        fileobj.seek(start)
        if size < MULTIPART_THRESHOLD:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=fileobj, **extra)
        else:
            self.client.upload_fileobj(
                fileobj, self.bucket, self._key(key), ExtraArgs=extra or None, Config=self._transfer
            )

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(self.uri(key)) from None
            raise

    def sizes(self, prefix: str) -> dict[str, int]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                out[obj["Key"][strip:]] = obj["Size"]
        return out

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if _missing(error):
                return None
            raise

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else head["ContentLength"]

    def metadata(self, key: str) -> dict[str, str]:
        head = self._head(key)
        return {} if head is None else dict(head.get("Metadata", {}))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
