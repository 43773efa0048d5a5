"""Where a dataset card's images came from: NASA's API, the offline double, or another host."""

from dataclasses import dataclass
from urllib.parse import urlsplit

NASA_API_HOST = "images-api.nasa.gov"


@dataclass(frozen=True)
class Source:
    """Where the images came from, in the card's words."""

    title: str  # the card's heading
    label: str  # "Images returned by <label>"
    note: str  # what a reader must know about that source, or ""
    is_nasa: bool


def source_of(api_base_url: str) -> Source:
    """NASA's own API, the offline NASA double (a search API on this machine), or another one."""
    parts = urlsplit(api_base_url)
    host = parts.hostname or ""
    # Scheme, host and port only: never a path, query or credentials from the setting.
    origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    if host == NASA_API_HOST:
        return Source("Moon images from the NASA Image and Video Library",
                      f"the NASA Image and Video Library search API ({NASA_API_HOST})", "", True)
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return Source("Synthetic images from the offline NASA double",
                      f"the offline NASA double at {origin}",
                      "The double is a stand-in for NASA's API on the machine that built this card "
                      "(as in `make demo`): its images are synthetic, not NASA's.", False)
    return Source(f"Images from {host}", f"the search API at {origin} (NASA_API_BASE_URL)",
                  f"That is not NASA's own API ({NASA_API_HOST}).", False)
