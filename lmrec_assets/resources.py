"""Resources: where the warehouse and artifacts live, which dataset to ingest, how the models train. Nothing here
connects at import."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, EnvVar

from lmrec_assets.ingestion.sources.base import SourceData

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DATASET_SOURCES = ("demo", "movielens-100k", "movielens-1m", "movielens-latest-small", "files")


def confined(path: Path | str, root: Path | str) -> Path:
    """`path` (relative ones are taken from `root`) with symlinks resolved; refused when it leaves `root`, so that no
    configuration value (a model name, a spec entry, a link in the landing folder) points reads or writes elsewhere."""
    base = Path(root).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"{path} resolves to {resolved}, outside the configured data root {base}")
    return resolved


class WarehouseResource(ConfigurableResource):
    """The pipeline's DuckDB file. One writer at a time: every asset that writes uses the `duckdb_warehouse` pool."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class ServingResource(ConfigurableResource):
    """The analysts' DuckDB file (read-only for them), published atomically by `published_recommendations`."""

    path: str

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(self.path, read_only=True)
        try:
            yield con
        finally:
            con.close()


class ArtifactStoreResource(ConfigurableResource):
    """Root folder for model artifacts (`artifacts/<model>/<version>/`) and reports."""

    data_dir: str

    def model_dir(self, model: str, version: str) -> Path:
        path = confined(Path("artifacts") / model / version, self.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def reports_dir(self) -> Path:
        path = Path(self.data_dir) / "reports"
        path.mkdir(parents=True, exist_ok=True)
        return path


class DatasetResource(ConfigurableResource):
    """Which data to ingest. Switching source is configuration (`LMREC_DATASET`), never a code edit.

    - `demo`: the synthetic data set generated from `seed` and `scale` (scale 1 ~ 1k users, 1.5k items, 50k events).
    - `movielens-100k`, `movielens-1m`, `movielens-latest-small`: the GroupLens files in the folder `path`.
    - `files`: your own CSV / Parquet / JSONL exports; `files_spec` is JSON with keys interactions, items, users,
      column_map, item_text_columns, sequence_format, delimiter, rating_range (see `ingestion/sources/files.py`).
      When `path` is set it is the files' root: relative entries are taken from it and no entry may leave it.
    Landing files are read only from inside the landing folder (a link pointing elsewhere is refused).
    """

    source: str = "demo"
    path: str = ""
    landing_dir: str = ""  # incremental interaction files dropped here are appended (default: <data dir>/landing)
    seed: int = 7
    scale: float = 1.0
    files_spec: str = "{}"

    def load(self) -> SourceData:
        # Imports are local so that loading the code location stays fast and light.
        if self.source == "demo":
            from lmrec_assets.ingestion.sources.demo import demo_size, generate_demo

            n_users, n_items, n_interactions = demo_size(self.scale)
            return generate_demo(self.seed, n_users, n_items, n_interactions)
        if self.source.startswith("movielens-"):
            from lmrec_assets.ingestion.sources.movielens import load_movielens

            return load_movielens(self.source, self.path)
        if self.source == "files":
            from lmrec_assets.ingestion.sources.files import FilesSpec, load_files

            spec = json.loads(self.files_spec)
            if self.path:
                spec |= {role: str(confined(spec[role], self.path)) for role in ("interactions", "items", "users") if spec.get(role)}
            return load_files(FilesSpec(**spec))
        raise ValueError(f"Unknown dataset source {self.source!r}; choose one of {', '.join(DATASET_SOURCES)}")

    def landing_files(self) -> list[Path]:
        """New-interaction files waiting in the landing folder, oldest first (name order breaks ties)."""
        folder = Path(self.landing_dir) if self.landing_dir else landing_dir()
        files = [confined(p.name, folder) for p in folder.glob("*")
                 if p.suffix.lower() in (".csv", ".tsv", ".parquet", ".jsonl") and p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


class TrainingProfileResource(ConfigurableResource):
    """How the model assets train (`models/profiles.py`): `profile` `demo` (Params defaults) or `nightly` (each model's
    QUALITY setting); empty = `demo` on the bundled demo dataset, `nightly` otherwise (`LMREC_PROFILE`).
    `budget_minutes`: training minutes for the whole run, shared by the clock-budgeted models by the rule in
    `models/profiles.py` (`LMREC_TRAINING_BUDGET_MINUTES`; unset: 45 under nightly, none under demo; 0: none).
    `memory_budget_gb`: the memory one model may use (`LMREC_MEMORY_BUDGET_GB`; unset: 75% of this machine's RAM).
    A model whose estimated time exceeds the run budget, or memory this, is skipped (`models/costs.py`).
    All can be set per run: `resources: {training: {config: {profile: nightly, budget_minutes: 30}}}`."""

    profile: str = ""
    budget_minutes: float | None = None
    memory_budget_gb: float | None = None


def _env_or_default(name: str, default: str) -> str | EnvVar:
    """Use the environment variable when it is set (the UI then shows where the value came from)."""
    return EnvVar(name) if name in os.environ else default


def warehouse_path() -> str:
    return os.environ.get("LMREC_WAREHOUSE") or str(_data_dir() / "warehouse" / "lmrec.duckdb")


def serving_path() -> str:
    return os.environ.get("LMREC_SERVING") or str(_data_dir() / "serving" / "lmrec_serving.duckdb")


def landing_dir() -> Path:
    return Path(os.environ.get("LMREC_LANDING_DIR") or _data_dir() / "landing")


def _data_dir() -> Path:
    return Path(os.environ.get("LMREC_DATA_DIR", str(DEFAULT_DATA_DIR)))


def default_resources() -> dict[str, ConfigurableResource]:
    """Every value can come from the environment; the UI then shows the variable's name rather than a literal."""
    return {
        "warehouse": WarehouseResource(path=_env_or_default("LMREC_WAREHOUSE", warehouse_path())),
        "serving": ServingResource(path=_env_or_default("LMREC_SERVING", serving_path())),
        "artifacts": ArtifactStoreResource(data_dir=_env_or_default("LMREC_DATA_DIR", str(_data_dir()))),
        "dataset": DatasetResource(
            source=_env_or_default("LMREC_DATASET", "demo"),
            path=_env_or_default("LMREC_DATASET_PATH", ""),
            landing_dir=_env_or_default("LMREC_LANDING_DIR", str(landing_dir())),
            seed=int(os.environ.get("LMREC_DEMO_SEED", "7")),
            scale=float(os.environ.get("LMREC_DEMO_SCALE", "1.0")),
            files_spec=_env_or_default("LMREC_FILES_SPEC", "{}"),
        ),
        "training": TrainingProfileResource(
            profile=_env_or_default("LMREC_PROFILE", ""),
            budget_minutes=float(budget) if (budget := os.environ.get("LMREC_TRAINING_BUDGET_MINUTES")) else None,
            memory_budget_gb=float(memory) if (memory := os.environ.get("LMREC_MEMORY_BUDGET_GB")) else None,
        ),
    }
