"""S3 (or any S3-compatible) store on a boto3 client, as dagster-aws's S3 IO managers do it."""

from typing import BinaryIO

from botocore.exceptions import ClientError

from nasa_assets.storage.base import ObjectStore

# Below this a single PUT (one request); above, a multipart upload in parts of this size, aborted
# on failure, so no partial object ever appears under the key.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = MULTIPART_THRESHOLD


class _Slice:
    """A read-only window [start, start + size) of a seekable file, streamed by botocore.

    Parts are sent one after the other straight from the file: s3transfer's upload_fileobj would
    read every part of a file object into memory first (16 parallel 60 MB images = ~1 GB)."""

    def __init__(self, fileobj: BinaryIO, start: int, size: int):
        self._file, self._start, self._size, self._pos = fileobj, start, size, 0

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._file.seek(self._start + self._pos)
        data = self._file.read(n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def s3_root_uri(bucket: str, prefix: str = "") -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


class S3Store(ObjectStore):
    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = s3_root_uri(bucket, self.prefix)

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
            self._put_multipart(self._key(key), fileobj, start, size, extra)

    def _put_multipart(self, full_key: str, fileobj: BinaryIO, start: int, size: int, extra: dict) -> None:
        """Parts streamed from the file one at a time (images already upload in parallel).

        Per-part CRC32 checksums as s3transfer sends them, unless the client is configured to
        send checksums only when required (for S3-compatible stores without them)."""
        checksum = {}
        if getattr(self.client.meta.config, "request_checksum_calculation", None) == "when_supported":
            checksum = {"ChecksumAlgorithm": "CRC32"}
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=full_key, **extra, **checksum
        )["UploadId"]
        try:
            parts = []
            for number, offset in enumerate(range(0, size, PART_SIZE), start=1):
                body = _Slice(fileobj, start + offset, min(PART_SIZE, size - offset))
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id, PartNumber=number, Body=body,
                    **checksum,
                )
                part = {"PartNumber": number, "ETag": response["ETag"]}
                if "ChecksumCRC32" in response:
                    part["ChecksumCRC32"] = response["ChecksumCRC32"]
                parts.append(part)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            except Exception:  # the original error matters more; S3 lifecycle rules clean up leftovers
                pass
            raise

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
