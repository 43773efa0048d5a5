"""One storage abstraction for local folders and S3; the IO manager and the image writer share it."""

from nasa_assets.storage.base import ObjectStore
from nasa_assets.storage.local import LocalStore
from nasa_assets.storage.s3 import S3Store

__all__ = ["LocalStore", "ObjectStore", "S3Store"]
