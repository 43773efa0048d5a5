"""Search pages as static partitions, one per page of 100 hits."""

import dagster as dg

from nasa_assets.dataset.pages import PAGE_KEYS

search_pages = dg.StaticPartitionsDefinition(PAGE_KEYS)
