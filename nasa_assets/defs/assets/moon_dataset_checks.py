"""moon_dataset's checks: pure verdicts on the table a run built, before it is published."""

import dagster as dg
import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.consolidate import shrink_problem
from nasa_assets.dataset.duplicates import groups_across_splits
from nasa_assets.dataset.imaging import sha256_of
from nasa_assets.dataset.sampling import seeded_sample
from nasa_assets.storage import ObjectStore

UNIQUE_NASA_ID = "unique_nasa_id"
URIS_EXIST = "uris_exist"
SHA256_SAMPLE = "sha256_sample"
SHRINK_WITHIN_LIMIT = "shrink_within_limit"
NO_GROUP_ACROSS_SPLITS = "no_duplicate_group_across_splits"


def check_shrink(
    previous: int | None, new: int, max_shrink: float, accepted: bool
) -> dg.AssetCheckResult:
    problem = shrink_problem(previous, new, max_shrink)
    if problem and not accepted:
        description = (f"{problem}: the published table and card were kept. If the shrink is real, "
                       "run moon_dataset once with the config accept_shrink: true.")
    elif problem:
        description = f"{problem}: accepted by the run config (accept_shrink: true)."
    else:
        description = None
    return dg.AssetCheckResult(
        check_name=SHRINK_WITHIN_LIMIT,
        passed=problem is None or accepted,
        description=description,
        metadata={"previous_rows": previous if previous is not None else "none published",
                  "new_rows": new, "max_shrink": max_shrink,
                  "accepted_shrink": bool(problem and accepted),
                  "problems": [problem] if problem and not accepted else []},
    )


def check_groups_within_splits(manifest: pd.DataFrame) -> dg.AssetCheckResult:
    crossing = groups_across_splits(tables.records(manifest[["duplicate_group", "split"]]))
    return dg.AssetCheckResult(
        check_name=NO_GROUP_ACROSS_SPLITS,
        passed=not crossing,
        description=(f"{len(crossing)} duplicate groups have members in more than one split: the "
                     "published table and card were kept." if crossing else None),
        metadata={"groups": int(manifest["duplicate_group"].nunique()),
                  "groups_across_splits": len(crossing),
                  "examples": [{"duplicate_group": g, "splits": s}
                               for g, s in list(crossing.items())[:10]]},
    )


def check_unique(manifest: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = manifest.loc[manifest["nasa_id"].duplicated(keep=False), "nasa_id"]
    missing = int(manifest["nasa_id"].isna().sum())
    return dg.AssetCheckResult(
        check_name=UNIQUE_NASA_ID,
        passed=duplicated.empty and not missing,
        metadata={"duplicated": sorted(set(duplicated.dropna()))[:10], "null_ids": missing},
    )


def check_uris(manifest: pd.DataFrame, sizes: dict[str, int]) -> dg.AssetCheckResult:
    missing, wrong = [], []
    for row in manifest[["image_key", "bytes"]].itertuples():
        size = sizes.get(row.image_key)
        if size is None:
            missing.append(row.image_key)
        elif size != row.bytes:
            wrong.append({"image_key": row.image_key, "recorded": int(row.bytes), "stored": size})
    return dg.AssetCheckResult(
        check_name=URIS_EXIST,
        passed=not missing and not wrong,
        metadata={
            "checked": len(manifest),
            "missing": len(missing),
            "missing_examples": missing[:10],
            "wrong_size": len(wrong),
            "wrong_size_examples": wrong[:10],
        },
    )


def check_sha256_sample(manifest: pd.DataFrame, store: ObjectStore, size: int) -> dg.AssetCheckResult:
    """Re-hash up to `size` images, the same sample for the same table (seeded)."""
    rows = list(manifest[["image_key", "sha256"]].itertuples())
    sample = seeded_sample(rows, size)
    bad = []
    for row in sample:
        try:
            if sha256_of(store.iter_chunks(row.image_key)) != row.sha256:
                bad.append({"image_key": row.image_key, "problem": "sha256 differs"})
        except FileNotFoundError:
            bad.append({"image_key": row.image_key, "problem": "missing"})
    return dg.AssetCheckResult(
        check_name=SHA256_SAMPLE,
        passed=not bad,
        metadata={"sampled": len(sample), "mismatched": len(bad), "examples": bad[:10]},
    )
