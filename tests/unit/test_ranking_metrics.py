"""Metric code against hand-computed cases and an independent implementation (scikit-learn's ndcg_score)."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from lmrec_assets.models.ranking import mask_seen, metrics_from_ranks, target_ranks, top_k


def test_hand_computed_metrics():
    # Three users whose held-out item lands at ranks 1, 3 and 12.
    m = metrics_from_ranks(np.array([1, 3, 12]), ks=(5, 10, 20)).set_index("k")
    assert m.loc[5, "hr"] == pytest.approx(2 / 3)
    assert m.loc[5, "ndcg"] == pytest.approx((1.0 + 0.5) / 3)  # 1/log2(2) + 1/log2(4)
    assert m.loc[5, "mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert m.loc[5, "precision"] == pytest.approx(2 / 3 / 5)
    assert m.loc[10, "recall"] == m.loc[10, "hr"]
    assert m.loc[20, "ndcg"] == pytest.approx((1.0 + 0.5 + 1 / np.log2(13)) / 3)
    assert m.loc[20, "mrr"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)


def test_ranks_break_ties_by_item_index_like_top_k():
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.5]])
    items, values = top_k(scores, 4)
    assert items.tolist() == [[1, 0, 2, 4]]
    assert values.tolist() == [[0.9, 0.5, 0.5, 0.5]]
    for position, item in enumerate(items[0], start=1):
        assert target_ranks(scores, np.array([item]))[0] == position


def test_top_k_matches_a_stable_full_sort_on_random_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # many ties
    items, _ = top_k(scores, 10)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(items, expected)


def test_masked_items_are_never_recommended():
    scores = np.ones((2, 6), dtype=np.float32)
    histories = [np.array([0, 1, 2]), np.array([5])]
    masked = mask_seen(scores, np.array([0, 1]), histories)
    items, _ = top_k(masked, 3)
    assert set(items[0]) == {3, 4, 5} and 5 not in items[1]


def test_ndcg_agrees_with_scikit_learn():
    rng = np.random.default_rng(1)
    n_users, n_items = 200, 300
    scores = rng.normal(size=(n_users, n_items))  # continuous: no ties, so both orderings agree
    targets = rng.integers(0, n_items, size=n_users)
    relevance = np.zeros_like(scores)
    relevance[np.arange(n_users), targets] = 1.0
    ours = metrics_from_ranks(target_ranks(scores, targets), ks=(5, 10, 20)).set_index("k")
    for k in (5, 10, 20):
        assert ours.loc[k, "ndcg"] == pytest.approx(ndcg_score(relevance, scores, k=k), abs=1e-9)
