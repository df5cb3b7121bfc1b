"""The GX quality suites as Dagster asset checks: green on a real tiny run, red (with evidence) on broken recs."""

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetSelection,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)

from lmrec_assets.definitions import all_assets
from lmrec_assets.evaluation.quality import (
    check_severity,
    quality_checks,
    raw_users_suite,
    recommendations_quality,
    run_suite,
)
from tests.integration.pipeline import resources_for

pytestmark = pytest.mark.integration
CHECK_NAMES = {
    "raw_interactions_quality", "raw_items_quality", "raw_users_quality", "marts_quality", "recommendations_quality",
}


def run_with_checks(data_dir: Path, selection: AssetSelection) -> ExecuteInProcessResult:
    return materialize(
        [*all_assets, *quality_checks],
        resources=resources_for(data_dir),
        instance=DagsterInstance.ephemeral(),
        selection=selection,
        raise_on_error=False,
    )


def quality_evaluations(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.check_name in CHECK_NAMES}


@pytest.fixture(scope="module")
def pipeline(demo_pipeline, tmp_path_factory) -> tuple[ExecuteInProcessResult, Path]:
    result, shared_dir = demo_pipeline
    data_dir = tmp_path_factory.mktemp("lmrec_quality")  # a private copy: tests below write into it
    shutil.copytree(shared_dir, data_dir, dirs_exist_ok=True)
    return result, data_dir


def test_every_quality_check_passes_on_the_demo_run(pipeline):
    result, _ = pipeline
    assert result.success
    evaluations = quality_evaluations(result)
    assert set(evaluations) == CHECK_NAMES
    for name, evaluation in evaluations.items():
        metadata = evaluation.metadata
        assert evaluation.passed, (name, metadata["failed"].value, metadata["expectations"].value)
        assert evaluation.severity == check_severity(name)
        assert metadata["n_failed"].value == 0 and metadata["n_expectations"].value >= 4
        assert metadata["expectations"].value.startswith("| suite")
    assert evaluations["recommendations_quality"].asset_key.to_user_string() == "recommendations"
    assert evaluations["marts_quality"].asset_key.to_user_string() == "fct_interactions"
    assert {evaluations[n].severity for n in CHECK_NAMES - {"marts_quality"}} == {AssetCheckSeverity.ERROR}
    assert evaluations["marts_quality"].severity == AssetCheckSeverity.WARN


def test_broken_recommendations_fail_with_evidence(pipeline, tmp_path):
    _, data_dir = pipeline
    broken = tmp_path / "warehouse" / "lmrec.duckdb"
    broken.parent.mkdir()
    shutil.copy(data_dir / "warehouse" / "lmrec.duckdb", broken)
    with duckdb.connect(str(broken)) as con:
        # two lists of the same model: one gets a duplicate rank, the other an item its user has already seen
        (model, run_id, dup_user), (_, _, seen_user) = con.execute(
            "select model, run_id, user_id from recs.latest_recommendations where rank = 1 order by model, user_id limit 2"
        ).fetchall()
        seen_item = con.execute(
            "select item_id from marts.fct_interactions where user_id = ? limit 1", [seen_user]
        ).fetchone()[0]
        in_list = "run_id = ? and model = ? and user_id = ?"
        con.execute(f"update recs.recommendations set rank = 1 where {in_list} and rank = 2", [run_id, model, dup_user])
        con.execute(f"update recs.recommendations set item_id = ? where {in_list} and rank = 3",
                    [seen_item, run_id, model, seen_user])

    result = run_with_checks(tmp_path, AssetSelection.checks(recommendations_quality))
    evaluation = quality_evaluations(result)["recommendations_quality"]
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    # blocking + ERROR: Dagster fails the check's step, so nothing downstream of recommendations would run
    assert not result.success
    failed = evaluation.metadata["failed"].value
    assert "expect_compound_columns_to_be_unique(model, user_id, rank)" in failed
    assert "expect_column_values_to_be_in_set(is_seen)" in failed
    assert "expect_column_pair_values_to_be_equal(n_ranks, k)" in failed
    # the row and list counts are still right: only what was broken fails
    assert "n_rows, k" not in failed and "in_catalogue" not in failed
    rows = evaluation.metadata["expectations"].value.splitlines()
    seen_row = next(row for row in rows if "| is_seen " in row)
    assert "| False " in seen_row and "| 1 of " in seen_row
    assert f"user_id={seen_user}, rank=3, item_id={seen_item}" in seen_row
    duplicate_rank_row = next(row for row in rows if "| model, user_id, rank " in row)
    assert "| 2 of " in duplicate_rank_row and f"user_id={dup_user}, rank=1" in duplicate_rank_row


def test_broken_recommendations_are_not_published(pipeline, tmp_path):
    _, data_dir = pipeline
    shutil.copytree(data_dir, tmp_path, dirs_exist_ok=True)
    serving = tmp_path / "serving" / "lmrec_serving.duckdb"
    with duckdb.connect(str(serving), read_only=True) as con:
        published_before = con.execute("select publish_id, count(*) from recommendations group by all").fetchall()
    with duckdb.connect(str(tmp_path / "warehouse" / "lmrec.duckdb")) as con:
        con.execute("update recs.recommendations set rank = 1 where rank = 2")  # duplicate ranks everywhere

    result = run_with_checks(
        tmp_path, AssetSelection.checks(recommendations_quality) | AssetSelection.assets("published_recommendations")
    )
    assert not quality_evaluations(result)["recommendations_quality"].passed
    assert "published_recommendations" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    with duckdb.connect(str(serving), read_only=True) as con:
        assert con.execute("select publish_id, count(*) from recommendations group by all").fetchall() == published_before


def test_checks_run_while_this_process_holds_a_read_write_connection(pipeline):
    _, data_dir = pipeline
    # DuckDB refuses a read-only connection next to a read-write one in the same process; the checks must cope.
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb")):
        result = run_with_checks(data_dir, AssetSelection.checks(*quality_checks))
    evaluations = quality_evaluations(result)
    assert set(evaluations) == CHECK_NAMES and all(e.passed for e in evaluations.values())


def test_severity_is_configurable_by_environment(monkeypatch):
    monkeypatch.setenv("LMREC_CHECK_SEVERITY_MARTS_QUALITY", "error")
    assert check_severity("marts_quality") == AssetCheckSeverity.ERROR
    monkeypatch.setenv("LMREC_CHECK_SEVERITY_RAW_ITEMS_QUALITY", "fatal")
    with pytest.raises(ValueError, match="WARN or ERROR"):
        check_severity("raw_items_quality")


def test_raw_users_suite_accepts_a_source_without_users():
    with duckdb.connect() as con:
        con.execute("create schema raw")
        con.execute("create table raw.users (user_id varchar, gender varchar, age_bracket varchar)")
        assert raw_users_suite(con, ["F", "M"]).passed


def test_run_suite_passes_on_good_data():
    import great_expectations as gx

    frame = pd.DataFrame({"user_id": ["a", "b", "c"], "rating": [1.0, None, 5.0]})
    expectations = [
        gx.expectations.ExpectColumnValuesToBeUnique(column="user_id"),
        gx.expectations.ExpectColumnValuesToBeBetween(column="rating", min_value=0, max_value=10),
        gx.expectations.ExpectTableRowCountToEqual(value=3),
    ]
    outcome = run_suite(frame, "tiny", expectations)
    assert outcome.passed and (outcome.n_expectations, outcome.n_failed) == (3, 0)
    assert "0 of 3 unexpected" in outcome.markdown
    # GX binds expectations to a suite; run_suite works on copies so the same list can be run again
    assert run_suite(frame, "tiny", expectations).passed


def test_run_suite_reports_failures_in_suite_order_with_examples():
    import great_expectations as gx

    frame = pd.DataFrame(
        {"user_id": ["a", "b", "b", "c"], "item_id": ["x", "y", "y", "z"], "rating": [1.0, 2.0, 99.0, 3.0]}
    )
    outcome = run_suite(frame, "tiny", [
        gx.expectations.ExpectTableRowCountToEqual(value=4),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id"]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="rating", min_value=0, max_value=10),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="no_such_column"),
    ], id_columns=["user_id"])
    assert not outcome.passed and (outcome.n_expectations, outcome.n_failed) == (4, 3)
    first, duplicates, rating, missing = outcome.outcomes
    assert first.success and first.observed == "4"
    assert duplicates.column == "user_id, item_id" and duplicates.observed == "2 of 4 unexpected"
    assert duplicates.examples == "user_id=b, item_id=y; user_id=b, item_id=y"
    assert rating.observed == "1 of 4 unexpected" and rating.examples == "user_id=b, rating=99.0"
    assert missing.observed.startswith("error:") and "no_such_column" in missing.observed
    assert "expect_column_values_to_be_between" in outcome.markdown and "rating=99.0" in outcome.markdown
