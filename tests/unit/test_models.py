"""Baseline models on a tiny hand-made split: real fitting, no mocks."""

import numpy as np

from lmrec_assets.models.base import SplitData, history_matrix
from lmrec_assets.models.ease import EASE, EASEParams, _solve
from lmrec_assets.models.popularity import Popularity


def tiny_split() -> SplitData:
    rng = np.random.default_rng(0)
    # Two taste clusters over 20 items: users 0-29 like items 0-9, users 30-59 like items 10-19.
    sequences, valid, test = [], [], []
    for u in range(60):
        pool = np.arange(10) if u < 30 else np.arange(10, 20)
        picks = rng.choice(pool, size=6, replace=False)
        sequences.append(picks[:4])
        valid.append(picks[4])
        test.append(picks[5])
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(60)]),
        item_ids=np.array([f"i{i}" for i in range(20)]),
        item_text=[f"item {i}" for i in range(20)],
        item_titles=[f"Item {i}" for i in range(20)],
        train_sequences=sequences,
        valid_items=np.array(valid),
        test_items=np.array(test),
    )


def test_popularity_counts_train_items():
    data = tiny_split()
    model = Popularity()
    model.fit(data)
    assert model.item_counts.sum() == 60 * 4
    assert model.score(np.array([0, 1]), data.train_sequences).shape == (2, 20)


def test_ease_closed_form_matches_definition_and_learns_clusters(tmp_path):
    data = tiny_split()
    x = history_matrix(data.train_sequences, np.arange(60), 20).toarray()
    weights = _solve(x.T @ x, 10.0)
    expected = np.eye(20) - np.linalg.inv(x.T @ x + 10 * np.eye(20)) / np.diag(np.linalg.inv(x.T @ x + 10 * np.eye(20)))
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(weights, expected, atol=1e-5)

    # Items without train interactions stay out of the inverse, and the weights are the full inverse's exactly.
    x[:, 15:] = 0
    expected = np.eye(20) - np.linalg.inv(x.T @ x + 10 * np.eye(20)) / np.diag(np.linalg.inv(x.T @ x + 10 * np.eye(20)))
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(_solve(x.T @ x, 10.0), expected, atol=1e-5)
    assert not _solve(x.T @ x, 10.0)[15:].any()

    model = EASE(EASEParams(l2_grid=[1.0, 10.0]))
    report = model.fit(data)
    assert report.params["l2"] in (1.0, 10.0) and len(report.curve) == 2
    scores = model.score(np.array([0, 59]), data.train_sequences)
    assert scores[0, :10].mean() > scores[0, 10:].mean() and scores[1, 10:].mean() > scores[1, :10].mean()

    model.save(tmp_path)
    np.testing.assert_array_equal(EASE.load(tmp_path).weights, model.weights)


def test_histories_add_held_out_items_in_order():
    data = tiny_split()
    assert list(data.histories("test")[0]) == [*data.train_sequences[0], data.valid_items[0], data.test_items[0]]
    assert list(data.histories("valid")[0]) == [*data.train_sequences[0], data.valid_items[0]]
