"""What the double answers: the corpus it serves, edited by tests, and each response body."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from nasa_assets_tests.nasa_double.corpus import (
    _V11_LINK_ORDER,
    CAP_REASON,
    DATA_DIR,
    REAL_API_ORIGIN,
    RENDITION_DIMS,
    RENDITIONS,
    RESULT_CAP,
    _rewrite_asset_url,
    _rewrite_raw,
    _synthetic_data,
)
from nasa_assets_tests.nasa_double.images import _jpeg, _padded_chunks, _padded_size


class Answers:
    """The corpus and the answers of a NasaDouble (a mixin: the state lives in NasaDouble)."""

    # -- corpus -----------------------------------------------------------------------------

    def _synthetic(self, nasa_id: str, index: int, salt: str = "") -> dict:
        return {
            "nasa_id": nasa_id,
            "data": _synthetic_data(nasa_id, index, self.seed, salt),
            "format": "1.0" if index % 2 == 0 else "1.1",
        }

    def replace_item(self, position: int, new_nasa_id: str) -> None:
        """Put a new synthetic item with ``new_nasa_id`` at 0-based ``position``."""
        with self._lock:
            if not 0 <= position < len(self._records):
                raise IndexError(f"position {position} outside corpus of {len(self._records)}")
            record = self._synthetic(new_nasa_id, position, salt=f"replaced:{new_nasa_id}")
            self._records[position] = record
            self._known[new_nasa_id] = record

    def insert_items(self, count: int, at: int = 0) -> None:
        """Insert ``count`` new synthetic items (``MOON-NEW-nnnnn``) before position ``at``."""
        with self._lock:
            at = max(0, min(at, len(self._records)))
            new = []
            for _ in range(count):
                nasa_id = f"MOON-NEW-{self._inserted:05d}"
                new.append(self._synthetic(nasa_id, self._inserted, salt="inserted"))
                self._inserted += 1
            self._records[at:at] = new
            for record in new:
                self._known[record["nasa_id"]] = record

    def put_raw_items(self, position: int, items: list) -> None:
        """Serve ``items`` verbatim at 0-based ``position`` onwards, replacing the items there.

        For hostile-input tests: any JSON value is served as is, except that string hrefs on
        ``https://images-assets.nasa.gov`` point at this double (as for the recorded items). An
        item with a string ``data[0].nasa_id`` has its files served like any other item's.
        """
        with self._lock:
            if not 0 <= position <= len(self._records) - len(items):
                raise IndexError(f"positions {position}..{position + len(items) - 1} outside corpus")
            for offset, item in enumerate(items):
                try:
                    nasa_id = item["data"][0]["nasa_id"]
                except (TypeError, KeyError, IndexError):
                    nasa_id = None
                record = {"nasa_id": nasa_id, "raw": copy.deepcopy(item)}
                self._records[position + offset] = record
                if isinstance(nasa_id, str):
                    self._known[nasa_id] = record

    def add_query(self, q: str, total_hits: int) -> list[str]:
        """Serve ``total_hits`` synthetic items of their own to searches whose ``q`` is exactly
        ``q`` (ids ``<Q>-nnnnn``, e.g. ``MARS-00000``); any other ``q`` keeps the main corpus.
        Their files are served like any other item's. Returns the new ids in search order."""
        tag = "".join(c for c in q.upper() if c.isalnum()) or "Q"
        with self._lock:
            records = [self._synthetic(f"{tag}-{i:05d}", i, salt=f"query:{q}") for i in range(total_hits)]
            self._queries[q] = records
            for record in records:
                self._known[record["nasa_id"]] = record
        return [r["nasa_id"] for r in records]

    def set_collection(self, nasa_id: str, body: Any) -> None:
        """Serve ``body`` (any JSON value, verbatim) as ``nasa_id``'s collection.json."""
        with self._lock:
            self._collections[nasa_id] = copy.deepcopy(body)

    def corpus(self) -> list[dict]:
        """The current items, rendered exactly as the search endpoint returns them."""
        with self._lock:
            records = list(self._records)
        return [self._render(r) for r in records]

    def _render(self, record: dict) -> dict:
        base = self.base_url
        if "raw" in record:
            return _rewrite_raw(copy.deepcopy(record["raw"]), base)
        if "real" in record:
            item = copy.deepcopy(record["real"])
            item["href"] = _rewrite_asset_url(item["href"], base)
            for link in item.get("links", []):
                link["href"] = _rewrite_asset_url(link["href"], base)
            return item
        nasa_id = record["nasa_id"]
        folder = f"{base}/image/{nasa_id}"
        if record["format"] == "1.0":
            links = [{"href": f"{folder}/{nasa_id}~thumb.jpg", "rel": "preview", "render": "image"}]
        else:
            links = []
            for rendition, rel in _V11_LINK_ORDER:
                width, height = RENDITION_DIMS[rendition]
                links.append({
                    "href": f"{folder}/{nasa_id}~{rendition}.jpg",
                    "rel": rel,
                    "render": "image",
                    "width": width,
                    "size": self._image_size(nasa_id, rendition),
                    "height": height,
                })
        return {"href": f"{folder}/collection.json", "data": [copy.deepcopy(record["data"])], "links": links}

    # -- responses --------------------------------------------------------------------------

    def _record(self, kind: str, path: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.requests.append((kind, path))

    def _take_fault(self, kind: str, nasa_id: str | None, page: int | None = None) -> str | None:
        with self._lock:
            queue = self._faults.get(kind)
            if queue:
                fault = queue.pop(0)
                if fault is not None:
                    return str(fault)
            if kind == "search" and page is not None:
                fault = self._faults.get("by_page", {}).get(page)
                if fault is not None:
                    return str(fault)
            if kind == "image" and nasa_id is not None:
                fault = self._faults.get("by_id", {}).get(nasa_id)
                if fault is not None:
                    return str(fault)
            fault = self._faults.get("always", {}).get(kind)
            if fault is not None:
                return str(fault)
        return None

    def _classify(self, path: str) -> tuple[str, str | None, str | None]:
        """(kind, nasa_id, target) for a request path; target None means 404."""
        if path == "/search":
            return "search", None, "search"
        parts = path.split("/")
        if len(parts) != 4 or parts[0] or parts[1] != "image":
            return "other", None, None
        nasa_id, filename = unquote(parts[2]), unquote(parts[3])
        with self._lock:
            known = nasa_id in self._known
        if filename == "collection.json":
            return "collection", nasa_id, filename if known else None
        if filename == "metadata.json":
            return "metadata", nasa_id, filename if known else None
        if filename.endswith(".jpg") and "~" in filename:
            stem, _, rendition = filename[:-4].rpartition("~")
            ok = known and stem == nasa_id and rendition in RENDITION_DIMS
            return "image", nasa_id, rendition if ok else None
        return "other", None, None

    def _search_response(self, query: str, empty: bool = False) -> tuple[int, Any]:
        params = parse_qsl(query, keep_blank_values=True)
        if not [k for k, _ in params if k != "api_key"]:
            return 400, (DATA_DIR / "error-search-no-parameters.json").read_bytes()
        args = dict(params)
        try:
            page = int(args.get("page", 1))
            page_size = int(args.get("page_size", 100))
        except ValueError:
            return 400, {"reason": "page and page_size must be integers"}
        if page < 1 or page_size < 1:
            return 400, {"reason": "page and page_size must be >= 1"}
        if (page - 1) * page_size >= RESULT_CAP:
            return 400, {"reason": CAP_REASON}
        media_types = [m.strip() for m in args.get("media_type", "image").split(",")]
        with self._lock:
            corpus = self._queries.get(args.get("q"), self._records)
            records = list(corpus) if "image" in media_types else []
        start = (page - 1) * page_size
        collection: dict = {
            "version": "1.0",
            "href": f"{REAL_API_ORIGIN}/search?{query}",
            "items": [] if empty else [self._render(r) for r in records[start : start + page_size]],
            "metadata": {"total_hits": len(records)},
        }
        if start + page_size < len(records):
            next_params = [(k, v) for k, v in params if k != "page"] + [("page", str(page + 1))]
            collection["links"] = [
                {"rel": "next", "prompt": "Next", "href": f"{self.base_url}/search?{urlencode(next_params)}"}
            ]
        return 200, {"collection": collection}

    def _collection_json(self, nasa_id: str) -> Any:
        with self._lock:
            if nasa_id in self._collections:
                return copy.deepcopy(self._collections[nasa_id])
        folder = f"{self.base_url}/image/{nasa_id}"
        # The real file lists ~orig twice.
        urls = [f"{folder}/{nasa_id}~orig.jpg"]
        urls += [f"{folder}/{nasa_id}~{r}.jpg" for r in RENDITIONS]
        return urls + [f"{folder}/metadata.json"]

    def _metadata_json(self, nasa_id: str) -> dict:
        with self._lock:
            record = self._known[nasa_id]
        if "raw" in record:
            data = record["raw"]["data"][0]
        else:
            data = record["real"]["data"][0] if "real" in record else record["data"]
        width, height = RENDITION_DIMS["orig"]
        created = data.get("date_created", "")
        size = self._image_size(nasa_id, "orig")
        return {
            "AVAIL:Center": data.get("center", ""),
            "AVAIL:DateCreated": created,
            "AVAIL:Description": data.get("description", ""),
            "AVAIL:Keywords": list(data.get("keywords", [])),
            "AVAIL:MediaType": "image",
            "AVAIL:NASAID": nasa_id,
            "AVAIL:Title": data.get("title", ""),
            "EXIF:DateTimeOriginal": created[:19].replace("-", ":").replace("T", " "),
            "File:FileSize": f"{max(1, round(size / 1024))} KiB",
            "File:ImageHeight": height,
            "File:ImageWidth": width,
            "File:MIMEType": "image/jpeg",
            "SourceFile": f"/tmp/nasa-double/{nasa_id}~orig.jpg",
        }

    def _image_size(self, nasa_id: str, rendition: str) -> int:
        return _padded_size(len(_jpeg(self.seed, nasa_id, rendition)), self.image_bytes)

    def _image_stream(self, nasa_id: str, rendition: str) -> tuple[Iterator[bytes], int]:
        target = self.image_bytes
        jpeg = _jpeg(self.seed, nasa_id, rendition)
        return _padded_chunks(jpeg, target), _padded_size(len(jpeg), target)

    def image_bytes_for(self, nasa_id: str, rendition: str) -> bytes:
        """Exactly the body served for ``/image/<nasa_id>/<nasa_id>~<rendition>.jpg`` right now."""
        with self._lock:
            if nasa_id not in self._known:
                raise KeyError(nasa_id)
        if rendition not in RENDITION_DIMS:
            raise KeyError(rendition)
        chunks, _ = self._image_stream(nasa_id, rendition)
        return b"".join(chunks)
