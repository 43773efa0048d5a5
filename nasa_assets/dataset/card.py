"""The dataset card (<root>/README.md).

Pure functions: a manifest DataFrame and a few facts in, numbers and Markdown out.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from urllib.parse import quote


from nasa_assets.dataset.card_source import NASA_API_HOST, source_of
from nasa_assets.dataset.columns import schema_table
from nasa_assets.dataset.markdown import cell, table
from nasa_assets.dataset.pages import page_ranges
from nasa_assets.dataset.summary import Summary, human_bytes

NASA_GUIDELINES_URL = "https://www.nasa.gov/nasa-brand-center/images-and-media/"


@dataclass
class CardFacts:
    """What the card says besides the counts: where the data came from and how it was made."""

    root_uri: str
    query: str
    sampling_factor: int
    rendition: str
    split_fractions: dict[str, float]
    pages_included: list[str] = field(default_factory=list)
    pages_missing: int = 0
    api_base_url: str = f"https://{NASA_API_HOST}"
    # duplicates.duplicate_counts and example_pairs (pairs carrying a_key / b_key image keys).
    duplicates: dict | None = None
    duplicate_examples: dict | None = None
    duplicate_max_distance: int = 6
    # The dataset's name, and which of its settings its NASA_DATASETS_FILE entry sets (else the
    # environment's): sampling_factor, rendition, split_fractions.
    dataset: str = "moon"
    from_file: frozenset[str] = frozenset()

    def origin(self, field: str, variable: str) -> str:
        """Where a setting came from: the dataset's entry in the datasets file, or `variable`."""
        if field in self.from_file:
            return f"{field} of `{self.dataset}` in NASA_DATASETS_FILE"
        return variable


def _count_table(title: str, counts: dict[str, int], total: int) -> list[str]:
    return table([title, "images", "share"],
                 ([cell(name), n, f"{n / total:.1%}" if total else "-"] for name, n in counts.items()),
                 align="lrr")


def loader_example(root_uri: str) -> list[str]:
    return [
        "```python",
        "from nasa_assets.dataset import load_manifest, iter_images",
        "",
        f'manifest = load_manifest("{root_uri}")          # one row per image (pandas)',
        'train = manifest[manifest["split"] == "train"]',
        f'for row, image in iter_images("{root_uri}", split="train"):  # (dict, PIL.Image)',
        '    print(row["nasa_id"], row["title"], image.size)',
        "```",
    ]


THUMBNAIL_WIDTH = 160


def _thumbnail(nasa_id: str, image_key: str) -> str:
    # Relative to the card, so a copied folder or prefix keeps working.
    src = quote(image_key)
    alt = html.escape(cell(nasa_id), quote=True)
    return (f'<a href="{src}"><img src="{src}" width="{THUMBNAIL_WIDTH}" alt="{alt}"></a>'
            f"<br>`{cell(nasa_id)}`")


def duplicates_section(facts: CardFacts) -> list[str]:
    """Counts of exact and near duplicates and a few example pairs as thumbnails."""
    counts = facts.duplicates
    if counts is None:
        return []
    lines = [
        "## Duplicates",
        "",
        "NASA holds one photograph under several ids (re-scans, crops, other sizes) and series of "
        "nearly identical frames. Images with the same bytes (`sha256`) or perceptual hashes "
        f"(`phash`) at most {facts.duplicate_max_distance} bits apart (DUPLICATE_MAX_DISTANCE) "
        "form one `duplicate_group`, transitively.",
        "",
        "| | |",
        "|---|---|",
        f"| images | {counts['images']} |",
        f"| duplicate groups (2 images or more) | {counts['duplicate_groups']} "
        f"({counts['images_in_duplicate_groups']} images) |",
        f"| exact copies (same bytes as another image of their group) | {counts['exact_copies']} |",
        f"| near copies (other bytes, perceptually the same) | {counts['near_copies']} |",
        f"| largest group | {counts['largest_group']} images |",
        "",
    ]
    for kind, title in (("exact", "exact copies"), ("near", "near copies")):
        pairs = (facts.duplicate_examples or {}).get(kind) or []
        if not pairs:
            continue
        lines += [f"Examples of {title}:", ""]
        lines += table(["image", "copy", "bits apart"], (
            [_thumbnail(p["a"], p["a_key"]), _thumbnail(p["b"], p["b_key"]), p["distance"]]
            for p in pairs
        ), align="llr")
        lines.append("")
    return lines


def render_card(summary: Summary, facts: CardFacts) -> str:
    """The dataset card as Markdown."""
    fractions = ", ".join(f"{name} {frac:g}" for name, frac in facts.split_fractions.items())
    dates = (f"{summary.first_date} to {summary.last_date}" if summary.first_date
             else "no dates")
    sampling = ("every item of each page" if facts.sampling_factor == 1
                else f"about 1 item in {facts.sampling_factor}, chosen by a hash of nasa_id")
    source = source_of(facts.api_base_url)
    env_factor = f"SEARCH_RESULT_SAMPLING_FACTOR={facts.sampling_factor}"
    metadata = "NASA's metadata" if source.is_nasa else "the metadata it served"
    # Another dataset says its name first; "Moon images" would be wrong for it.
    heading = (source.title if facts.dataset == "moon"
               else f"{facts.dataset}: {source.title.removeprefix('Moon ')}")
    lines = [
        f"# {heading}",
        "",
        f"Images returned by {source.label} for the query `{cell(facts.query)}` (media type "
        f"image), with {metadata}, one row per image in `moon_dataset.parquet` next to this card."
        + (f" {source.note}" if source.note else ""),
        "",
        "## At a glance",
        "",
        "| | |",
        "|---|---|",
        f"| source | {cell(source.label)} |",
        f"| images | {summary.images} |",
        f"| total size | {human_bytes(summary.total_bytes)} ({summary.total_bytes} bytes) |",
        f"| dates | {dates} |",
        f"| query | `{cell(facts.query)}` |",
        f"| sampling | {sampling} ({facts.origin('sampling_factor', env_factor)}) |",
        f"| rendition | {facts.rendition} requested ({facts.origin('rendition', 'NASA_IMAGE_RENDITION')}"
        "); the nearest available is kept when missing |",
        f"| search pages included | {page_ranges(facts.pages_included)} "
        f"({len(facts.pages_included)} of 100; {facts.pages_missing} not materialized yet) |",
        f"| location | `{facts.root_uri}` |",
        "",
        "## Splits",
        "",
        f"The `split` column is fixed by a hash of `duplicate_group` (fractions: {fractions}), so "
        "all copies of one picture are in the same split and none of a test image is in train. "
        "An image without duplicates keeps its split across rebuilds and refreshes, whatever page "
        "it moves to; a group's split can change when the group changes (a new copy with a "
        f"smaller nasa_id renames it). Changing {facts.origin('split_fractions', 'DATASET_SPLIT_FRACTIONS')} "
        "moves some images to another split.",
        "",
        *_count_table("split", summary.per_split, summary.images),
        "",
        *duplicates_section(facts),
        "## Captions",
        "",
        "`caption` is the text to train an image-text model on: `title` and `description` with "
        "HTML tags and entities removed, whitespace collapsed, credit lines (`Photo Credit: "
        "(NASA/...)`), image-use boilerplate, links and JSC photo-number stubs dropped; the title "
        "alone (plus the keywords not already in it) when the description is empty or repeats it; "
        "at most 1,000 characters, cut at a sentence end. `title`, `description` and `keywords` "
        "stay as NASA wrote them.",
        "",
        "## Centers",
        "",
        *_count_table("center", summary.per_center, summary.images),
        "",
        "## Renditions",
        "",
        *_count_table("rendition", summary.per_rendition, summary.images),
        "",
        "## Dates (by decade of date_created)",
        "",
        *_count_table("decade", summary.per_decade, summary.images),
        "",
        "## Schema of moon_dataset.parquet",
        "",
        *schema_table(),
        "",
        "Images are stored under `images/` relative to this card; `image_key` is their path from "
        "here, so a copy of the whole folder (or prefix) stays usable.",
        "",
        "## How to load it",
        "",
        "With the `nasa_assets` package installed (S3 credentials from the usual AWS variables; "
        "`AWS_ENDPOINT_URL` for S3-compatible stores):",
        "",
        *loader_example(facts.root_uri),
        "",
        "Without it: `pandas.read_parquet` on `moon_dataset.parquet`, and each image at "
        "`<this folder>/<image_key>`.",
        "",
        "For training: `nasa_assets.dataset.load_hf_dataset(root, split=...)` gives a Hugging Face "
        "`datasets.Dataset` (extra `hf`), and once the asset `moon_webdataset` has run, "
        "`webdataset/index.json` lists WebDataset tar shards per split (`<key>.jpg` + "
        "`<key>.json` with the caption).",
        "",
        "## NASA media usage guidelines (a note, not legal advice)",
        "",
        ("These images come from NASA." if source.is_nasa else
         f"These images were not served by NASA but by {source.label}; the note below is for "
         "images that do come from NASA."),
        "",
        "Per NASA's media usage guidelines, NASA content is generally "
        "not subject to copyright in the United States, and may be used for educational or "
        "informational purposes, but:",
        "",
        "- NASA asks that it be acknowledged as the source of the material (for example "
        "\"Image: NASA\", with the photographer or center where given);",
        "- the material may not be used to state or imply NASA's endorsement of a product, "
        "service or organization;",
        "- the NASA insignia and logotype (the \"meatball\" and the \"worm\") and other NASA "
        "emblems are protected and may not be used without NASA's permission;",
        "- some images are copyrighted by third parties (for example photos credited to others "
        "than NASA in `description` or `photographer`); their owners' terms apply.",
        "",
        f"Read the current guidelines before use: <{NASA_GUIDELINES_URL}>. This card summarizes "
        "them for convenience and is not legal advice.",
        "",
    ]
    return "\n".join(lines)
