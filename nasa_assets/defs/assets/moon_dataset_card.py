"""moon_dataset_card: the dataset card, README.md next to moon_dataset.parquet."""

import dagster as dg
import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.card import CardFacts, render_card
from nasa_assets.dataset.consolidate import duplicate_summary
from nasa_assets.dataset.datasets import DatasetSpec, parse_split_fractions
from nasa_assets.dataset.keys import CARD_KEY
from nasa_assets.dataset.pages import MAX_PAGES, PAGE_KEYS
from nasa_assets.dataset.summary import summarize
from nasa_assets.defs.assets.pages import MOON, asset_options, key_of
from nasa_assets.defs.io_manager import dataset_store, sibling, stored_pages
from nasa_assets.defs.resources import (
    CurationSettings,
    DatasetSettings,
    DatasetStorage,
    NasaApiResource,
    resolved,
)


# The settings a datasets-file entry may set for its dataset, which the card attributes to it.
OWN_SETTINGS = ("sampling_factor", "rendition", "split_fractions")


def moon_dataset_card_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """moon_dataset_card of one dataset: README.md at the dataset's root."""

    @dg.asset(
        **asset_options(spec),
        kinds={"python", "markdown"},
        ins={"moon_dataset": dg.AssetIn(key=key_of(spec, "moon_dataset"))},
        # Requested in the same tick as moon_dataset (eager counts a dependency about to be
        # requested as updated), and never for a rebuild that published nothing.
        automation_condition=dg.AutomationCondition.eager(),
    )
    def moon_dataset_card(
        context: dg.AssetExecutionContext,
        moon_dataset: pd.DataFrame,
        nasa: NasaApiResource,
        settings: DatasetSettings,
        storage: DatasetStorage,
        curation: CurationSettings,
    ) -> dg.MaterializeResult:
        """What moon_dataset holds, where it came from and how to load it: the Hugging Face style card
        (README.md) at the dataset root, rewritten from the published table."""
        return write_card(context, moon_dataset, nasa, storage, curation, spec,
                          resolved(spec, nasa, settings))

    return moon_dataset_card


def write_card(context: dg.AssetExecutionContext, moon_dataset: pd.DataFrame, nasa: NasaApiResource,
               storage: DatasetStorage, curation: CurationSettings, spec: DatasetSpec,
               ds: DatasetSpec) -> dg.MaterializeResult:
    """The card of `spec`'s dataset, whose settings (its own, else the environment's) are `ds`."""
    store = dataset_store(storage, context.asset_key)
    fractions = parse_split_fractions(ds.split_fractions)
    included = stored_pages(store, sibling(context.asset_key, "moon_images"), PAGE_KEYS)
    counts, examples = duplicate_summary(tables.records(moon_dataset), curation.duplicate_max_distance)
    facts = CardFacts(
        root_uri=store.root_uri, query=ds.query, sampling_factor=ds.sampling_factor,
        rendition=ds.rendition, split_fractions=fractions, pages_included=included,
        pages_missing=MAX_PAGES - len(included), api_base_url=nasa.base_url,
        duplicates=counts, duplicate_examples=examples,
        duplicate_max_distance=curation.duplicate_max_distance, dataset=spec.name,
        from_file=frozenset(f for f in OWN_SETTINGS if getattr(spec, f) is not None),
    )
    card = render_card(summarize(moon_dataset, list(fractions)), facts)
    store.put_bytes(CARD_KEY, card.encode("utf-8"), content_type="text/markdown; charset=utf-8")
    return dg.MaterializeResult(metadata={
        "uri": dg.MetadataValue.path(store.uri(CARD_KEY)),
        "card": dg.MetadataValue.md(card),
    })


moon_dataset_card = moon_dataset_card_asset()
