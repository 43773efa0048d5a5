"""What the dataset is, without Dagster; and its public loader:

    from nasa_assets.dataset import load_manifest, iter_images, open_store
"""

__all__ = [
    "CARD_KEY", "MANIFEST_KEY", "iter_images", "load_hf_dataset", "load_manifest", "open_store",
]


def __getattr__(name: str):
    # Lazy, so that importing one dataset module (keys, tables) does not load boto3 and Pillow.
    if name in ("iter_images", "load_hf_dataset", "load_manifest", "open_store"):
        from nasa_assets.dataset import loader

        return getattr(loader, name)
    if name in ("CARD_KEY", "MANIFEST_KEY"):
        from nasa_assets.dataset import keys

        return getattr(keys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
