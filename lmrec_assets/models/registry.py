"""Find and load the latest trained version of each model from `models.model_registry`."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from lmrec_assets.models.base import Recommender


def latest_versions(con: duckdb.DuckDBPyConnection, names: list[str]) -> pd.DataFrame:
    return con.execute(
        """
        select * from models.model_registry
        where model in (select unnest(?))
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
