"""Shared fixtures: a prepared dbt manifest, a temporary warehouse, and the path to ../shared/data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def shared_data_dir() -> Path:
    return Path(os.environ.get("LMREC_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data sets not found at {path} (set LMREC_SHARED_DATA to the shared/data folder)")
    return path


def pytest_configure(config):
    """`dbt parse` before collection: test modules import the definitions, which load the dbt manifest."""
    project = ROOT / "dbt_project"
    dbt = shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))  # not lmrec_assets.features: it needs the manifest
    subprocess.run([dbt, "parse", "--quiet", "--profiles-dir", str(project)], cwd=project, check=True)


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    return ROOT / "dbt_project" / "target" / "manifest.json"


@pytest.fixture(scope="session")
def demo_instance():
    """The Dagster instance (in memory) that recorded `demo_pipeline`'s run, for tests of a later refresh."""
    from dagster import DagsterInstance

    return DagsterInstance.ephemeral()


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory, dbt_manifest, demo_instance):
    """The whole graph materialized once on a tiny demo (real DuckDB, dbt, Dagster); tests must not modify it."""
    from tests.integration.pipeline import materialize_all, quick_training_config

    data_dir = tmp_path_factory.mktemp("demo_pipeline")
    result = materialize_all(data_dir, instance=demo_instance, run_config=quick_training_config())
    return result, data_dir
