"""Storage keys for images, derived from nasa_id alone so each image is stored once."""

import hashlib
import re
from urllib.parse import unquote, urlsplit

from nasa_assets.nasa.renditions import IMAGE_EXTENSIONS

# A nasa_id made only of these characters is used verbatim. Anything else gets a slug plus a
# hash, joined by "~", which a verbatim id can never contain: the two forms cannot collide.
# Verbatim ids have no lower-case letter, so no two verbatim names differ only in case (on a
# case-insensitive disk, macOS or Windows, "AS11-40-5874" and "as11-40-5874" would be one file);
# an id with lower-case letters gets the hash of its exact spelling. Upper case is the form most
# NASA ids take (PIA12235, NHQ201907180105), so their keys are the ones left unchanged.
_VERBATIM = re.compile(r"[A-Z0-9][A-Z0-9_.-]{0,119}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(nasa_id: str) -> str:
    """A file name for nasa_id: no slash, no leading dot, never "..", unique per id even where
    letter case is ignored."""
    if _VERBATIM.fullmatch(nasa_id) and ".." not in nasa_id:
        return nasa_id
    slug = _UNSAFE.sub("_", nasa_id).replace("..", "_").lstrip("._-")[:80] or "id"
    digest = hashlib.sha256(nasa_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{slug}~{digest}"


def extension_of(url: str) -> str:
    """The image extension of a URL's path, lower case; "bin" when it is not a known image type."""
    path = unquote(urlsplit(url).path)
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return ext if ext in IMAGE_EXTENSIONS else "bin"


def image_key(nasa_id: str, url: str) -> str:
    return f"images/{safe_name(nasa_id)}.{extension_of(url)}"


def table_key(table: str, partition: str | None = None) -> str:
    return f"{table}/{partition}.parquet" if partition else f"{table}.parquet"


MANIFEST_KEY = table_key("moon_dataset")  # moon_dataset.parquet
CARD_KEY = "README.md"
