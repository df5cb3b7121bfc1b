"""The published champion (chosen on valid among the models whose checks pass) and the CLI over the serving DB:
the champion by default, clear errors for unknown models and users, --k above the stored depth, 100 columns."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from lmrec_assets.cli import main
from lmrec_assets.evaluation.fairness_assets import FairnessThresholdsConfig, threshold_outcomes
from tests.integration.pipeline import FORCE_PUBLISH, materialize_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def serving(demo_pipeline):
    _, data_dir = demo_pipeline
    return data_dir / "serving" / "lmrec_serving.duckdb"  # only read here


@pytest.fixture
def lmrec(serving, monkeypatch, capsys):
    """Run `lmrec ARGS` in-process on a 100-column terminal: (exit code or error message, stdout)."""
    monkeypatch.setenv("LMREC_SERVING", str(serving))
    monkeypatch.setenv("COLUMNS", "100")

    def run(*args: str) -> tuple[int | str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as stop:
            code = stop.code
        return code, capsys.readouterr().out

    return run


def query(serving, sql: str, params=()):
    with duckdb.connect(str(serving), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_champion_is_the_best_valid_ndcg_among_models_whose_checks_pass(demo_pipeline, serving):
    champion = query(serving, "select * from champion")
    assert list(champion.columns) == ["model", "model_version", "valid_ndcg_at_10", "reason", "chosen_at"]
    assert len(champion) == 1
    best = champion.iloc[0]
    valid = query(serving, """select model, model_version, ndcg from evaluation_metrics
                              where split = 'valid' and segment = 'all' and k = 10""").set_index("model")
    fairness = threshold_outcomes(query(serving, "select * from fairness_summary"), FairnessThresholdsConfig())
    failed = set(fairness.loc[~fairness.passed, "model"])
    eligible = valid.drop(index=list(failed)).sort_values("ndcg", ascending=False)
    assert best.model == eligible.index[0] and best.model_version == valid.model_version[best.model]
    assert best.valid_ndcg_at_10 == pytest.approx(valid.ndcg[best.model])
    assert best.reason.startswith(f"best valid NDCG@10 ({best.valid_ndcg_at_10:.4f}) among {len(eligible)} models")
    assert f"runner-up {eligible.index[1]} {eligible.ndcg.iloc[1]:.4f}" in best.reason

    published = query(serving, "select published_at from recommendations limit 1").published_at[0]
    assert best.chosen_at == published
    rows = query(serving, "select * from champion_recommendations order by user_id, rank")
    latest = query(serving, "select * from latest_recommendations where model = ? order by user_id, rank", [best.model])
    assert list(rows.columns) == [*latest.columns, "champion", "chosen_because"]
    assert len(rows) == len(latest) and rows.item_id.tolist() == latest.item_id.tolist()
    assert set(rows.champion) == {best.model} and set(rows.chosen_because) == {best.reason}

    catalogue = query(serving, "select name, grain from catalogue").set_index("name").grain
    assert {"champion", "champion_recommendations"} <= set(catalogue.index)
    assert "segment" in catalogue["evaluation_metrics"]

    result, _ = demo_pipeline
    metadata = result.asset_materializations_for_node("published_recommendations")[0].metadata
    assert metadata["champion"].value == best.model and metadata["champion_reason"].value == best.reason
    assert best.model in metadata["champion_candidates"].value


def test_a_model_failing_its_fairness_check_is_not_the_champion(demo_pipeline, tmp_path):
    """Make one model the best on valid by far and give it an exposure Gini above the default threshold (0.95)."""
    _, shared_dir = demo_pipeline
    shutil.copytree(shared_dir, tmp_path, dirs_exist_ok=True)
    serving = tmp_path / "serving" / "lmrec_serving.duckdb"
    loser = query(serving, "select model from champion").model[0]
    with duckdb.connect(str(tmp_path / "warehouse" / "lmrec.duckdb")) as con:
        target = con.execute(
            "select model from evaluation.fairness_summary where model not in (select unnest(?)) and model <> ? "
            "order by model limit 1", [FairnessThresholdsConfig().exempt_models, loser]
        ).fetchone()[0]
        con.execute("update evaluation.evaluation_metrics set ndcg = 0.99 where model = ? and split = 'valid' "
                    "and segment = 'all' and k = 10", [target])
        con.execute("update evaluation.fairness_metrics set value = 0.99 where model = ? and side = 'item' "
                    "and metric = 'exposure_gini' and k = 10", [target])
    # Tables edited by hand leave no lineage row, so the publish is forced.
    assert materialize_all(tmp_path, selection=["published_recommendations"], run_config=FORCE_PUBLISH).success

    champion = query(serving, "select * from champion").iloc[0]
    assert champion.model == loser  # the previous champion again, not the target with its NDCG@10 of 0.99
    assert f"{target} (fairness failed: " in champion.reason and "exposure Gini@10 0.990 > 0.95" in champion.reason
    assert set(query(serving, "select champion from champion_recommendations").champion) == {loser}


def test_recommend_defaults_to_the_champion(lmrec, serving):
    best = query(serving, "select model, reason from champion").iloc[0]
    user = query(serving, "select min(user_id) as u from recommendations").u[0]
    code, out = lmrec("recommend", "--user", user, "--k", "3")
    assert code == 0
    assert out.startswith(f"Champion model: {best.model} ")
    lines = out.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "rank"])
    assert len(lines) == header + 1 + 3 and all(line.split()[0] == best.model for line in lines[header + 1:])
    assert max(map(len, out.splitlines())) <= 100
    code, out = lmrec("recommend", "--user", user, "--model", "all", "--k", "1")
    n_models = query(serving, "select count(distinct model) as n from recommendations").n[0]
    assert code == 0 and len(out.strip().splitlines()) == 1 + n_models


def test_recommend_names_an_unknown_model_or_user_and_lists_the_models(lmrec, serving):
    models = query(serving, "select distinct model from recommendations order by model").model.tolist()
    user = query(serving, "select min(user_id) as u from recommendations").u[0]
    code, _ = lmrec("recommend", "--user", user, "--model", "no_such_model")
    assert isinstance(code, str) and "Unknown model 'no_such_model'" in code
    assert f"Valid models: {', '.join(models)}" in code
    code, _ = lmrec("recommend", "--user", "no_such_user", "--model", models[0])
    assert isinstance(code, str) and "Unknown user 'no_such_user'" in code and user in code
    code, _ = lmrec("lineage", "--user", user, "--model", "no_such_model")
    assert isinstance(code, str) and "Unknown model 'no_such_model'" in code
    code, _ = lmrec("recommend", "--user", user, "--k", "0")
    assert isinstance(code, str) and "--k 0" in code


def test_k_above_the_stored_depth_shows_what_is_stored_and_says_so(lmrec, serving):
    depth = query(serving, "select max(rank) as d from recommendations where model = 'ease'").d[0]
    user = query(serving, "select min(user_id) as u from recommendations").u[0]
    code, out = lmrec("recommend", "--user", user, "--model", "ease", "--k", str(depth + 5))
    assert code == 0
    lines = out.strip().splitlines()
    rows = [line for line in lines if line.split()[0] == "ease"]
    assert len(rows) == depth
    assert f"--k {depth + 5} is above the stored depth" in out and f"top {depth} per user" in out
    code, out = lmrec("recommend", "--user", user, "--model", "ease", "--k", str(depth))
    assert code == 0 and "stored depth" not in out


def test_summary_fits_a_100_column_terminal_and_shows_the_champion(lmrec, serving):
    best = query(serving, "select model from champion").model[0]
    code, out = lmrec("summary")
    assert code == 0
    too_wide = [line for line in out.splitlines() if len(line) > 100]
    assert not too_wide, too_wide
    assert "-- The champion" in out and f"  {best} (version " in out
    assert "from champion_recommendations" in out and "champion_recommendations [user × rank]" in out
    assert "evaluation_metrics [model × version × split × segment × K]" in out
