"""Choosing the champion: best valid NDCG@10 among the models whose quality and fairness checks pass."""

import numpy as np
import pandas as pd

from lmrec_assets.evaluation.fairness_assets import FairnessThresholdsConfig
from lmrec_assets.serving import PASSED, choose_champion, fairness_by_model


def candidates(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model", "model_version", "valid_ndcg_at_10", "quality", "fairness"])


def test_best_valid_ndcg_among_passing_models_names_the_runner_up():
    champion = choose_champion(candidates(
        ("ease", "v1", 0.10, PASSED, PASSED),
        ("sasrec", "v2", 0.12, PASSED, PASSED),
        ("popularity", "v3", 0.05, PASSED, "exempt"),
    ), fairness_published=True)
    assert champion["model"] == "sasrec" and champion["model_version"] == "v2"
    assert champion["valid_ndcg_at_10"] == 0.12
    assert champion["reason"] == "best valid NDCG@10 (0.1200) among 3 models whose checks passed; runner-up ease 0.1000"


def test_a_model_failing_a_check_is_left_out_and_named():
    champion = choose_champion(candidates(
        ("ease", "v1", 0.10, PASSED, PASSED),
        ("sasrec", "v2", 0.12, PASSED, "failed: exposure Gini@10 0.970 > 0.95"),
        ("bpr", "v4", 0.11, "failed: 3 seen items", PASSED),
        ("hybrid", "v5", 0.08, PASSED, "not evaluated"),
    ), fairness_published=True)
    assert champion["model"] == "ease"
    reason = champion["reason"]
    assert reason.startswith("best valid NDCG@10 (0.1000) among 2 models whose checks passed; runner-up hybrid 0.0800")
    assert "left out: sasrec (fairness failed: exposure Gini@10 0.970 > 0.95)" in reason
    assert "bpr (quality failed: 3 seen items)" in reason
    assert "no fairness result for the published version of hybrid (kept)" in reason


def test_without_fairness_results_every_evaluated_model_competes_and_the_reason_says_so():
    champion = choose_champion(candidates(
        ("ease", "v1", 0.10, PASSED, "not evaluated"),
        ("sasrec", "v2", np.nan, PASSED, "not evaluated"),
    ), fairness_published=False)
    assert champion["model"] == "ease"
    assert "among 1 model whose checks passed; no runner-up" in champion["reason"]
    assert "no valid metrics for the published version of sasrec" in champion["reason"]
    assert "no per-model fairness results exist" in champion["reason"]


def test_ties_go_to_the_first_name_and_all_failing_falls_back_to_the_best_with_a_warning():
    tie = choose_champion(candidates(("sasrec", "v", 0.1, PASSED, PASSED), ("ease", "v", 0.1, PASSED, PASSED)), True)
    assert tie["model"] == "ease"
    failed = "failed: exposure Gini@10 0.990 > 0.95"
    fallback = choose_champion(candidates(("ease", "v", 0.1, PASSED, failed), ("bpr", "v", 0.2, PASSED, failed)), True)
    assert fallback["model"] == "bpr"
    assert fallback["reason"].startswith("no model passed every check, so best valid NDCG@10 (0.2000) among all 2")
    assert choose_champion(candidates(("ease", "v", np.nan, PASSED, PASSED)), True) is None


def test_fairness_by_model_uses_the_check_thresholds(monkeypatch):
    def row(model: str, gini: float) -> dict:
        out = {"model": model, "exposure_gini_at_10": gini}
        for attribute in ("gender", "age_bracket", "occupation", "activity_level"):
            out |= {f"{attribute}_ndcg_ratio_at_10": np.nan, f"{attribute}_gap_p_value": np.nan,
                    f"{attribute}_worst_group": None}
        return out

    summary = pd.DataFrame([row("ease", 0.5), row("sasrec", 0.9), row("popularity", 0.99)])
    assert fairness_by_model(summary, FairnessThresholdsConfig()) == {
        "ease": PASSED, "sasrec": PASSED, "popularity": "exempt"}
    monkeypatch.setenv("LMREC_FAIRNESS_MAX_EXPOSURE_GINI", "0.8")  # what the check would read too
    outcome = fairness_by_model(summary, FairnessThresholdsConfig())
    assert outcome["ease"] == PASSED and outcome["popularity"] == "exempt"
    assert outcome["sasrec"] == "failed: exposure Gini@10 0.900 > 0.8"
