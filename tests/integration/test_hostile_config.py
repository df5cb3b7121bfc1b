"""A configured file name is data, not SQL: publishing from a warehouse whose file name holds quotes and SQL works."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from lmrec_assets.definitions import all_assets
from lmrec_assets.resources import WarehouseResource
from tests.integration.pipeline import FORCE_PUBLISH, resources_for

pytestmark = pytest.mark.integration


def test_publish_from_a_warehouse_with_a_hostile_file_name(demo_pipeline, tmp_path):
    _, shared_dir = demo_pipeline
    shutil.copytree(shared_dir, tmp_path, dirs_exist_ok=True)
    hostile = tmp_path / "warehouse" / 'wh"; drop table recs.recommendations; --.duckdb'
    shutil.copy(tmp_path / "warehouse" / "lmrec.duckdb", hostile)
    resources = resources_for(tmp_path) | {"warehouse": WarehouseResource(path=str(hostile))}

    result = materialize(all_assets, resources=resources, instance=DagsterInstance.ephemeral(),
                         selection=["published_recommendations"], run_config=FORCE_PUBLISH)

    assert result.success
    with duckdb.connect(str(hostile), read_only=True) as con:
        assert con.execute("select count(*) from recs.recommendations").fetchone()[0] > 0
    with duckdb.connect(str(tmp_path / "serving" / "lmrec_serving.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from latest_recommendations").fetchone()[0] > 0
