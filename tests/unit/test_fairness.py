"""Fairness metrics against hand-computed cases and plain re-implementations."""

import numpy as np
import pandas as pd
import pytest

from lmrec_assets.evaluation.fairness import (
    catalogue_coverage,
    counterfactual_prompt,
    exposure_gini,
    item_exposure,
    jaccard_at_k,
    long_tail_share,
    lorenz_curve,
    popularity_lift,
    prag_at_k,
    serp_at_k,
    snsr_snsv,
    user_group_metrics,
)
from lmrec_assets.models.ranking import metrics_from_ranks

# --- user groups ---------------------------------------------------------------------------------------------------


def test_group_metrics_hand_computed():
    ranks = np.array([1, 3, 12, 2])
    groups = pd.DataFrame({"gender": ["F", "F", "M", None]})
    table = user_group_metrics(ranks, groups, k=10).set_index(["metric", "group"])
    assert table.loc[("hr@10", "F"), "value"] == pytest.approx(1.0)
    assert table.loc[("ndcg@10", "F"), "value"] == pytest.approx((1.0 + 0.5) / 2)  # 1/log2(2), 1/log2(4)
    assert table.loc[("hr@10", "M"), "value"] == 0.0
    assert table.loc[("hr@10", "F"), "n_users"] == 2 and table.loc[("hr@10", "M"), "n_users"] == 1
    hr = table.loc["hr@10"]
    assert (hr["ratio"] == 0.0).all() and (hr["difference"] == 1.0).all() and (hr["worst_group"] == "M").all()
    assert hr["overall"].iloc[0] == pytest.approx(2 / 3)  # the unknown-gender user is left out


def test_fairlearn_group_metrics_equal_a_manual_group_by():
    rng = np.random.default_rng(0)
    n = 500
    ranks = rng.integers(1, 60, size=n)
    groups = pd.DataFrame({
        "gender": rng.choice(["F", "M"], size=n),
        "age_bracket": pd.Series(rng.choice(["18-24", "25-34", "35-44"], size=n)).where(rng.random(n) > 0.2),
        "activity_level": rng.choice(["light", "medium", "heavy"], size=n),
    })
    table = user_group_metrics(ranks, groups, k=10)
    for attribute in groups.columns:
        known = groups[attribute].notna()
        frame = pd.DataFrame({"group": groups[attribute][known], "rank": ranks[known.to_numpy()]})
        frame["hr"] = (frame["rank"] <= 10).astype(float)
        frame["ndcg"] = np.where(frame["rank"] <= 10, 1.0 / np.log2(frame["rank"] + 1.0), 0.0)
        manual = frame.groupby("group").agg(hr=("hr", "mean"), ndcg=("ndcg", "mean"), n=("hr", "size"))
        overall = metrics_from_ranks(frame["rank"].to_numpy(), ks=(10,)).iloc[0]
        for metric in ("hr", "ndcg"):
            rows = table[(table.attribute == attribute) & (table.metric == f"{metric}@10")].set_index("group")
            np.testing.assert_allclose(rows["value"], manual.loc[rows.index, metric])
            np.testing.assert_array_equal(rows["n_users"], manual.loc[rows.index, "n"])
            assert rows["difference"].iloc[0] == pytest.approx(manual[metric].max() - manual[metric].min())
            assert rows["ratio"].iloc[0] == pytest.approx(manual[metric].min() / manual[metric].max())
            assert rows["worst_group"].iloc[0] == manual[metric].idxmin()
            assert rows["overall"].iloc[0] == pytest.approx(overall[metric])


def test_unknown_only_attribute_is_skipped():
    table = user_group_metrics(np.array([1, 2]), pd.DataFrame({"gender": [None, None]}))
    assert table.empty


# --- item exposure -------------------------------------------------------------------------------------------------


def test_gini_equal_exposure_is_zero_and_one_item_is_almost_one():
    equal = np.array([[0, 1], [2, 3]])
    assert exposure_gini(equal, n_items=4) == pytest.approx(0.0)
    one_item = np.zeros((50, 10), dtype=int)
    assert exposure_gini(one_item, n_items=100) == pytest.approx(99 / 100)  # (n - 1) / n


def test_gini_hand_computed_and_consistent_with_lorenz_area():
    recommended = np.array([[3, 2], [3, 3]])  # exposure [0, 0, 1, 3]
    assert item_exposure(recommended, 4).tolist() == [0, 0, 1, 3]
    # mean absolute difference over ordered pairs: 20 / (2 * 4^2 * mean 1) = 0.625
    assert exposure_gini(recommended, 4) == pytest.approx(0.625)
    x, y = lorenz_curve(item_exposure(recommended, 4))
    assert x.tolist() == [0, 0.25, 0.5, 0.75, 1.0] and y.tolist() == [0, 0, 0, 0.25, 1.0]
    area = np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2)
    assert 1 - 2 * area == pytest.approx(0.625)


def test_coverage_popularity_lift_and_long_tail_share():
    recommended = np.array([[0, 1], [2, 3], [0, 0]])
    assert catalogue_coverage(recommended, n_items=8) == pytest.approx(4 / 8)

    counts = np.array([10, 5, 1, 0])
    histories = [np.array([0]), np.array([1, 2]), np.array([], dtype=int)]  # the third user has no profile: left out
    gap_profile = (10 + (5 + 1) / 2) / 2  # 6.5
    gap_recommended = ((10 + 5) / 2 + (1 + 0) / 2) / 2  # 4.0
    expected = (gap_recommended - gap_profile) / gap_profile
    assert popularity_lift(recommended, counts, histories) == pytest.approx(expected)

    counts = np.array([5, 9, 1, 9, 0, 0, 0, 0, 0, 0])  # the head is the top ceil(0.2 * 10) = 2 items: 1 and 3
    assert long_tail_share(np.array([[1, 0], [3, 4]]), counts) == pytest.approx(0.5)
    # ties at the head boundary go to the lower item index
    assert long_tail_share(np.array([[0], [1]]), np.array([3, 3, 3, 0, 0])) == pytest.approx(0.5)


# --- counterfactual prompt fairness --------------------------------------------------------------------------------


def test_list_similarities_hand_computed():
    assert jaccard_at_k([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    assert jaccard_at_k([1, 2, 3, 9], [2, 3, 4, 8], k=3) == pytest.approx(2 / 4)

    neutral, sensitive = ["a", "b", "c"], ["b", "x", "a"]
    # b at sensitive rank 1 weighs K - 1 + 1 = 3, a at rank 3 weighs 1; normaliser K(K+1)/2 = 6
    assert serp_at_k(neutral, sensitive) == pytest.approx(4 / 6)
    assert serp_at_k(neutral, neutral) == pytest.approx(1.0)
    assert serp_at_k(neutral, ["x", "y", "z"]) == 0.0

    # sensitive pairs in order: (b, a) disagrees with the neutral order; (b, x) and (a, x) agree (x is absent)
    assert prag_at_k(neutral, ["b", "a", "x"]) == pytest.approx(2 / (3 * 4))
    assert prag_at_k(neutral, neutral) == pytest.approx((3 - 1) / (2 * (3 + 1)))
    assert prag_at_k(neutral, ["x", "y", "z"]) == 0.0


def _prag_by_the_formula(neutral: list, sensitive: list, k: int) -> float:
    """The paper's double sum over ordered pairs v1 != v2, written out literally."""
    r = {v: i for i, v in enumerate(neutral[:k])}
    ra = {v: i for i, v in enumerate(sensitive[:k])}
    total = 0
    for v1 in ra:
        for v2 in ra:
            if v1 != v2 and v1 in r and r[v1] < r.get(v2, np.inf) and ra[v1] < ra[v2]:
                total += 1
    return total / (k * (k + 1))


def test_prag_matches_the_literal_formula_on_random_lists():
    rng = np.random.default_rng(3)
    for _ in range(50):
        k = int(rng.integers(1, 12))
        neutral = rng.choice(30, size=k, replace=False).tolist()
        sensitive = rng.choice(30, size=k, replace=False).tolist()
        assert prag_at_k(neutral, sensitive) == pytest.approx(_prag_by_the_formula(neutral, sensitive, k))


def test_snsr_snsv_on_a_constructed_example():
    # Two instructions, one neutral top-3 each; gender values F and M give these sensitive lists.
    neutral = [["a", "b", "c"], ["d", "e", "f"]]
    sensitive = {
        "F": [["a", "b", "c"], ["d", "e", "x"]],  # Jaccard 1 and 2/4 -> mean 0.75
        "M": [["a", "y", "z"], ["d", "e", "f"]],  # Jaccard 1/5 and 1 -> mean 0.6
    }
    means = {v: np.mean([jaccard_at_k(n, s) for n, s in zip(neutral, lists)]) for v, lists in sensitive.items()}
    assert means == pytest.approx({"F": 0.75, "M": 0.6})
    snsr, snsv = snsr_snsv(means)
    assert snsr == pytest.approx(0.15)
    assert snsv == pytest.approx(0.075)  # population std of two values: half their distance

    snsr, snsv = snsr_snsv({"under 18": 0.6, "25-34": 0.8, "56+": 0.7})
    assert snsr == pytest.approx(0.2)
    assert snsv == pytest.approx(np.sqrt((0.1**2 + 0.1**2 + 0.0) / 3))
    assert snsr_snsv({"F": 0.5, "M": 0.5}) == (0.0, 0.0)


def test_counterfactual_prompts():
    prompt = "A viewer who recently watched: Heat; Ronin would next enjoy"
    assert counterfactual_prompt(prompt, "gender", "F") == (
        "As a female viewer, a viewer who recently watched: Heat; Ronin would next enjoy"
    )
    assert counterfactual_prompt(prompt, "age_bracket", "25-34").startswith("As a viewer aged 25-34, a viewer who")
    assert counterfactual_prompt(prompt, "occupation", "writer").startswith("As a viewer whose occupation is writer, ")
    assert counterfactual_prompt("Heat; Ronin", "gender", "M") == "As a male viewer, Heat; Ronin"  # title keeps case
    with pytest.raises(KeyError):
        counterfactual_prompt(prompt, "religion", "x")
    with pytest.raises(ValueError):
        counterfactual_prompt(prompt, "gender", " ")
