"""The interface both stores implement: keys are relative POSIX paths under the dataset root."""

import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class ObjectStore(ABC):
    """Objects under one root. A write is all-or-nothing: no partial object under a final key."""

    root_uri: str

    @abstractmethod
    def uri(self, key: str) -> str:
        """Absolute URI of a key: s3://bucket/key or file:///path."""

    @abstractmethod
    def put_file(
        self, key: str, fileobj: BinaryIO, *, content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Store the readable, seekable `fileobj` (from its current position) under `key`."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object; FileNotFoundError when absent."""

    @abstractmethod
    def sizes(self, prefix: str) -> dict[str, int]:
        """Every key under `prefix` with its size, in as few requests as the backend allows."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size of one object, None when absent."""

    @abstractmethod
    def metadata(self, key: str) -> dict[str, str]:
        """Metadata stored with the object by put_file (empty where the backend keeps none)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; absent is fine."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self.put_file(key, io.BytesIO(data), content_type=content_type)

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(key) as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def write_parquet(self, key: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        buffer.seek(0)
        self.put_file(key, buffer, content_type="application/vnd.apache.parquet")

    def read_parquet(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))
