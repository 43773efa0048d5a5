"""Local-folder store: the embedded default when no bucket is configured."""

import hashlib
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from nasa_assets.storage.base import ObjectStore

# Writes land in <root>/.incoming first and are renamed into place, so a killed run never
# leaves a partial file under a final key. The writer's pid and host in the name let a later run
# tell a dead writer's leftovers from a live one's; a file nobody touched for STALE_AFTER seconds
# is a leftover whoever wrote it (a pid reused after a restart, e.g. pid 1 in a container, or a
# writer on another host sharing the folder). A write into .incoming is one local copy: seconds.
INCOMING = ".incoming"
STALE_AFTER = 15 * 60
_HOST_TAG = "h" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


class LocalStore(ObjectStore):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path == self.root or self.root not in path.parents:
            raise ValueError(f"key {key!r} escapes the storage root")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_file(self, key, fileobj, *, content_type=None, metadata=None) -> None:
        target = self._path(key)
        incoming = self.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{os.getpid()}-{_HOST_TAG}-{uuid.uuid4().hex[:8]}-"
        fd, tmp = tempfile.mkstemp(dir=incoming, prefix=prefix)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(fileobj, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            _set_metadata(tmp, metadata or {})
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def sizes(self, prefix: str) -> dict[str, int]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        if not base.is_dir():
            return {}
        return {
            path.relative_to(self.root).as_posix(): path.stat().st_size
            for path in base.rglob("*")
            if path.is_file() and INCOMING not in path.relative_to(self.root).parts
        }

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def metadata(self, key: str) -> dict[str, str]:
        """What put_file stored with the file, from its extended attributes (empty where the
        file system has none: the caller then treats the object as of unknown origin)."""
        path = self._path(key)
        try:
            names = os.listxattr(path)
            return {n[len(XATTR_PREFIX):]: os.getxattr(path, n).decode() for n in names
                    if n.startswith(XATTR_PREFIX)}
        except (OSError, AttributeError, UnicodeDecodeError):  # no xattrs here, or not Linux
            return {}

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def remove_orphans(self, stale_after: float = STALE_AFTER) -> int:
        """Delete temporary files of writers that no longer run, or that nobody touched for
        `stale_after` seconds; returns how many."""
        incoming = self.root / INCOMING
        removed = 0
        for path in incoming.glob("*") if incoming.is_dir() else []:
            pid, host = (path.name.split("-") + [""])[:2]
            # Names without a host tag come from this host (the format before the tag).
            here = host == _HOST_TAG or not (host.startswith("h") and len(host) == 9)
            live = pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))) if here else True
            try:
                stale = time.time() - path.stat().st_mtime > stale_after
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if live and not stale:
                continue
            path.unlink(missing_ok=True)
            removed += 1
        return removed


XATTR_PREFIX = "user.nasa_assets."


def _set_metadata(path: str, metadata: dict[str, str]) -> None:
    """Object metadata as extended attributes, like S3's; skipped where unsupported."""
    try:
        for name, value in metadata.items():
            os.setxattr(path, XATTR_PREFIX + name, value.encode())
    except (OSError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
