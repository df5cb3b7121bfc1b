"""EASE budgets that follow the data: one eigendecomposition for the λ grid, a cost estimate, a top-popular variant."""

import json
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import save_file

from lmrec_assets.models import ease
from lmrec_assets.models.base import SplitData, history_matrix
from lmrec_assets.models.ease import EASE, MEMORY_BUDGET_BYTES, EASEParams, _EigenSolver, estimate, max_items_within


def synthetic_split(n_users: int, n_items: int, per_user: tuple[int, int], seed: int = 0, zipf: float = 0.8,
                    ) -> SplitData:
    """Users with a few items each, drawn with a Zipf-like popularity, so most of a large catalogue is never seen."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    cdf = np.cumsum(popularity) / popularity.sum()
    sequences = []
    for _ in range(n_users):
        draws = np.unique(np.minimum(np.searchsorted(cdf, rng.random(3 * per_user[1])), n_items - 1))
        sequences.append(rng.permutation(draws)[: rng.integers(*per_user)])
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        item_text=[""] * n_items,
        item_titles=[""] * n_items,
        train_sequences=[s[:-2].astype(np.int64) for s in sequences],
        valid_items=np.array([s[-2] for s in sequences]),
        test_items=np.array([s[-1] for s in sequences]),
    )


def direct_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE by its definition: B = I - P·diag(1/diag(P)), P = (G + λI)⁻¹ (float64 inverse)."""
    precision = np.linalg.inv(gram + l2 * np.eye(len(gram)))
    weights = np.eye(len(gram)) - precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights


@pytest.mark.parametrize("row_block", [1024, 7])  # 7: many row blocks, so the mirrored lower triangle is exercised
def test_one_eigendecomposition_gives_the_direct_inverse_weights_for_every_l2(monkeypatch, row_block):
    monkeypatch.setattr(ease, "_ROW_BLOCK", row_block)
    data = synthetic_split(300, 40, (4, 9), zipf=0.3)
    x = history_matrix(data.train_sequences, np.arange(data.n_users), data.n_items)
    gram = (x.T @ x).toarray().astype(np.float64)
    assert (np.diag(gram) > 0).all()
    solver = _EigenSolver.from_interactions(x, "float64")
    solver32 = _EigenSolver(gram.astype(np.float32), "float32")
    for l2 in (1.0, 10.0, 250.0):
        expected = direct_weights(gram, l2)
        assert np.allclose(solver.weights(l2), expected)
        assert np.allclose(solver32.weights(l2), expected, rtol=1e-4, atol=1e-5)  # float32 path, large catalogues


def test_fit_without_variant_matches_direct_inverse_and_keeps_all_active_items():
    data = synthetic_split(200, 60, (4, 9), zipf=0.3)
    model = EASE(EASEParams(l2_grid=[5.0, 50.0]))
    report = model.fit(data)
    assert report.params["variant"] == "full" and report.params["fitted_items"] == len(model.active)
    x = history_matrix(data.train_sequences, np.arange(data.n_users), data.n_items)[:, model.active].toarray()
    assert np.allclose(model.weights, direct_weights(x.T @ x, report.params["l2"]))
    assert not model.item_bias.any()


def test_estimate_grows_as_cube_and_square_and_50k_items_do_not_fit_the_default_budget():
    small = estimate(10_000, 8_000, 100_000, fitted_items=6_000)
    double = estimate(10_000, 8_000, 100_000, fitted_items=12_000)
    assert 4 < double.seconds / small.seconds <= 8 and 2 < double.peak_bytes / small.peak_bytes <= 4
    assert estimate(1_000, 2_000, 10_000).dtype == "float64" and estimate(1_000, 20_000, 10_000).dtype == "float32"
    # Amazon Toys whole: code version 1 took 612 s and 8.3 GB; the eigendecomposition path is predicted well under.
    toys = estimate(19_412, 11_924, 150_000)
    assert toys.peak_bytes < 3 * 2**30 and toys.seconds < 612
    # 50k items: a 50k × 50k float32 matrix alone is 10 GB.
    full = estimate(2_000, 50_000, 20_000)
    assert full.peak_bytes > MEMORY_BUDGET_BYTES and full.peak_bytes > 50_000**2 * 4
    fits = max_items_within(MEMORY_BUDGET_BYTES, 2_000, 50_000, 20_000)
    assert 0 < fits < 50_000
    assert estimate(2_000, 50_000, 20_000, fitted_items=fits).peak_bytes <= MEMORY_BUDGET_BYTES
    assert estimate(2_000, 50_000, 20_000, fitted_items=fits + 1).peak_bytes > MEMORY_BUDGET_BYTES


def test_50k_item_catalogue_fits_the_most_popular_items_only_and_scores_every_item(tmp_path):
    data = synthetic_split(600, 50_000, (4, 12))
    counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items)
    assert (counts > 0).sum() > 500
    model = EASE(EASEParams(l2_grid=[100.0], max_items=500))
    tracemalloc.start()
    try:
        report = model.fit(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**30  # no 50k × 50k matrix (10 GB in float32) was ever allocated, not even a boolean one (2.5 GB)

    assert report.params["variant"] == "top_popular" and "max_items 500" in report.params["variant_reason"]
    assert report.params["fitted_items"] == 500 and report.params["items_with_interactions"] == (counts > 0).sum()
    assert report.params["estimated_full_peak_bytes"] > report.params["estimated_peak_bytes"]
    json.dumps(report.params)  # goes into the registry and the model card as JSON
    assert model.weights.shape == (500, 500) and report.trainable_parameters == 500 * 500
    # The 500 fitted items are the most popular ones (ties by item index).
    assert set(model.active) == set(np.argsort(-counts, kind="stable")[:500])
    assert counts[model.active].min() >= counts[np.setdiff1d(np.arange(data.n_items), model.active)].max()

    users = np.arange(50)
    histories = data.histories("valid")
    scores = model.score(users, histories)
    assert scores.shape == (50, 50_000) and np.isfinite(scores).all()
    tail = np.setdiff1d(np.arange(data.n_items), model.active)
    # Outside the fitted block: popularity just below zero, so every item stays rankable and the tail is ordered.
    assert (scores[:, tail] < 0).all() and (scores[:, tail] >= -ease.TAIL_EPSILON).all()
    by_count = tail[np.argsort(-counts[tail], kind="stable")]
    assert (np.diff(scores[0, by_count]) <= 0).all()
    assert np.abs(scores[:, model.active]).max() > ease.TAIL_EPSILON  # the fitted block does the ranking

    model.save(tmp_path)
    loaded = EASE.load(tmp_path)
    np.testing.assert_array_equal(loaded.score(users, histories), scores)
    np.testing.assert_array_equal(loaded.active, model.active)
    assert loaded.l2 == model.l2 and loaded.n_items == 50_000


def test_memory_budget_alone_selects_the_variant():
    data = synthetic_split(150, 1_500, (4, 8))
    present = int((np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items) > 0).sum())
    budget = estimate(150, 1_500, 1_000, fitted_items=present // 2).peak_bytes
    model = EASE(EASEParams(l2_grid=[50.0], max_items=0, memory_budget_bytes=budget))
    report = model.fit(data)
    assert report.params["variant"] == "top_popular" and "memory budget" in report.params["variant_reason"]
    assert 0 < report.params["fitted_items"] < present
    assert report.params["estimated_peak_bytes"] <= budget < report.params["estimated_full_peak_bytes"]

    unlimited = EASE(EASEParams(l2_grid=[50.0], max_items=0, memory_budget_bytes=2**40)).fit(data)
    assert unlimited.params["variant"] == "full" and unlimited.params["fitted_items"] == present


def test_code_version_1_artifacts_still_load_and_score_the_same(tmp_path):
    data = synthetic_split(100, 30, (4, 8), zipf=0.3)
    x = history_matrix(data.train_sequences, np.arange(data.n_users), data.n_items).toarray()
    dense = direct_weights(x.T @ x, 20.0).astype(np.float32)
    save_file({"weights": dense}, str(tmp_path / "model.safetensors"))
    (tmp_path / "params.json").write_text(json.dumps({"l2_grid": [20.0]}))
    (tmp_path / "fitted.json").write_text(json.dumps({"l2": 20.0}))
    loaded = EASE.load(tmp_path)
    users = np.arange(10)
    expected = history_matrix(data.train_sequences, users, data.n_items) @ dense
    np.testing.assert_allclose(loaded.score(users, data.train_sequences), expected, rtol=1e-6, atol=1e-7)
