"""The small pieces of the fairness assets: group filtering, the permutation p-value, λ choice and thresholds."""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity

from lmrec_assets.evaluation.fairness_assets import (
    FairnessThresholdsConfig,
    choose_lambda,
    large_groups_only,
    range_p_value,
    resolved_thresholds,
    threshold_outcomes,
)


def test_small_groups_become_unknown():
    groups = pd.DataFrame({"gender": ["F", "F", "M", "M", "M", None], "age": ["a", "b", "b", "b", "c", "c"]})
    kept = large_groups_only(groups, min_users=2)
    assert kept.gender.tolist()[:5] == ["F", "F", "M", "M", "M"] and pd.isna(kept.gender[5])
    assert pd.isna(kept.age[0]) and kept.age.tolist()[1:] == ["b", "b", "b", "c", "c"]


def test_range_p_value_separates_a_real_gap_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(["F", "M"], 200)
    same = rng.random(400)
    shifted = same + np.where(labels == "M", 0.3, 0.0)
    assert range_p_value(shifted, labels, 500, np.random.default_rng(1)) < 0.01
    assert range_p_value(same, labels, 500, np.random.default_rng(1)) > 0.05
    # At least 1 / (n + 1), never 0: the observed labelling is one of the permutations.
    assert range_p_value(shifted, labels, 99, np.random.default_rng(1)) == pytest.approx(0.01)


def test_lambda_is_the_largest_within_the_valid_cost():
    rows = []
    for split, ndcgs in {"valid": [0.10, 0.099, 0.096, 0.09], "test": [0.20, 0.15, 0.14, 0.13]}.items():
        for lam, ndcg in zip([0.0, 0.1, 0.2, 0.3], ndcgs):
            rows.append({"split": split, "lam": lam, "ndcg": ndcg, "exposure_gini": 0.9 - lam, "worst_gap": 0.02})
    table = choose_lambda(pd.DataFrame(rows), max_ndcg_cost=0.05)
    assert table[table.selected].lam.unique().tolist() == [0.2]  # 4% cost on valid; 0.3 costs 10%
    test = table[table.split == "test"].set_index("lam")
    assert test.ndcg_cost[0.2] == pytest.approx(0.3)  # reported on test, whatever it is
    assert test.gini_change[0.0] == 0 and test.gap_change[0.3] == 0


def test_thresholds_come_from_config_then_env_then_defaults(monkeypatch):
    monkeypatch.setenv("LMREC_FAIRNESS_MAX_NDCG_RATIO_GAP_GENDER", "0.1")
    monkeypatch.setenv("LMREC_FAIRNESS_MAX_EXPOSURE_GINI", "0.5")
    monkeypatch.setenv("LMREC_CHECK_SEVERITY_FAIRNESS_GAPS_WITHIN_THRESHOLD", "error")
    gaps, gini, significance, severity = resolved_thresholds(FairnessThresholdsConfig(max_exposure_gini=0.8))
    assert gaps["gender"] == 0.1 and gaps["occupation"] == 0.5 and gini == 0.8 and significance == 0.05
    assert severity == AssetCheckSeverity.ERROR
    with pytest.raises(ValueError):
        resolved_thresholds(FairnessThresholdsConfig(severity="loud"))


def test_a_gap_fails_only_when_large_and_significant():
    def summary(ratio: float, p_value: float) -> pd.DataFrame:
        row = {"model": "ease", "exposure_gini_at_10": 0.5}
        for attribute in ("gender", "age_bracket", "occupation", "activity_level"):
            row |= {f"{attribute}_ndcg_ratio_at_10": np.nan, f"{attribute}_gap_p_value": np.nan,
                    f"{attribute}_worst_group": None}
        row |= {"gender_ndcg_ratio_at_10": ratio, "gender_gap_p_value": p_value, "gender_worst_group": "F"}
        return pd.DataFrame([row])

    config = FairnessThresholdsConfig(severity="WARN")
    assert not threshold_outcomes(summary(0.5, 0.01), config).set_index("measure").passed["NDCG@10 ratio gap, gender"]
    assert threshold_outcomes(summary(0.5, 0.40), config).passed.all()  # large but could be chance
    assert threshold_outcomes(summary(0.9, 0.01), config).passed.all()  # significant but small
    assert len(threshold_outcomes(summary(0.5, 0.01).assign(model="popularity"), config)) == 0  # exempt
