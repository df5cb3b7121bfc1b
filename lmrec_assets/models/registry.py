"""Find and load the latest trained version of each model from `models.model_registry`.

A model listed in `models.skipped_models` (its latest refresh estimated it could not fit the run's time or memory
budget, `models/costs.py`) has no latest version: its older artifacts were trained on other data, so evaluation,
recommendations and the champion leave it out until a refresh trains or re-uses a version of it again."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from lmrec_assets.models.base import Recommender
from lmrec_assets.warehouse import table_exists

SKIPPED_MODELS = "models.skipped_models"


def latest_versions(con: duckdb.DuckDBPyConnection, names: list[str]) -> pd.DataFrame:
    skipped = f"and model not in (select model from {SKIPPED_MODELS})" if table_exists(con, SKIPPED_MODELS) else ""
    return con.execute(
        f"""
        select * from models.model_registry
        where model in (select unnest(?)) {skipped}
        qualify row_number() over (partition by model order by created_at desc) = 1
        order by model
        """,
        [names],
    ).df()


def load_model(name: str, artifact_path: str) -> Recommender:
    from lmrec_assets.models.assets import MODELS  # the registry of classes lives with the assets that build them

    return MODELS[name][0].load(Path(artifact_path))


def load_version(con: duckdb.DuckDBPyConnection, name: str, version: str) -> Recommender:
    """The artifact of one given version (e.g. the one whose lists are being published), which a newer training run
    may have superseded as the latest."""
    # fetchall, not fetchone: a half-read result would block the caller's next statement on this connection.
    rows = con.execute(
        "select artifact_path from models.model_registry where model = ? and model_version = ?", [name, version]
    ).fetchall()
    if not rows:
        raise LookupError(f"{name} version {version} is not in models.model_registry")
    return load_model(name, rows[0][0])
