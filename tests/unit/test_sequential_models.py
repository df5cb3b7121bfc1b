"""SASRec and the text + ID hybrid on tiny hand-made splits: real training, no mocks."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from lmrec_assets.models.base import SplitData
from lmrec_assets.models.hybrid import HybridSeq, HybridSeqParams
from lmrec_assets.models.sasrec import SASRec, SASRecParams, pad_right, training_windows, window_targets

TINY = {"max_len": 8, "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.1, "lr": 1e-2, "batch_size": 16, "max_minutes": 0.5}
SCIFI = "A space opera: astronauts fly a starship to a distant galaxy and fight alien robots."
ROMANCE = "A romantic comedy: two lovers meet at a wedding, fall in love and marry in Paris."


@pytest.fixture(autouse=True)
def one_thread_and_private_cache(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path))  # the text-embedding cache goes to a temp folder


def cyclic_split(n_users: int = 40, n_items: int = 30) -> SplitData:
    """Each user walks the catalogue in a fixed cycle from a random start: the next item is fully predictable."""
    rng = np.random.default_rng(0)
    sequences, valid, test = [], [], []
    for _ in range(n_users):
        walk = (rng.integers(n_items) + np.arange(9)) % n_items
        sequences.append(walk[:7])
        valid.append(walk[7])
        test.append(walk[8])
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        item_text=[f"item {i}" for i in range(n_items)],
        item_titles=[f"Item {i}" for i in range(n_items)],
        train_sequences=sequences,
        valid_items=np.array(valid),
        test_items=np.array(test),
    )


def two_genre_split() -> SplitData:
    """Items 0-9 are sci-fi, 10-19 romance; 20 (sci-fi) and 21 (romance) have no train interactions (cold)."""
    rng = np.random.default_rng(1)
    texts = [f"{SCIFI} Part {i}." for i in range(10)] + [f"{ROMANCE} Part {i}." for i in range(10)]
    texts += [f"{SCIFI} The sequel.", f"{ROMANCE} The sequel."]
    sequences, valid, test = [], [], []
    for u in range(60):
        pool = np.arange(10) if u % 2 == 0 else np.arange(10, 20)
        picks = rng.choice(pool, size=8, replace=False)
        sequences.append(picks[:6])
        valid.append(picks[6])
        test.append(picks[7])
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(60)]),
        item_ids=np.array([f"i{i}" for i in range(22)]),
        item_text=texts,
        item_titles=[t[:20] for t in texts],
        train_sequences=sequences,
        valid_items=np.array(valid),
        test_items=np.array(test),
    )


def test_windows_cover_every_transition_once():
    windows = training_windows([np.arange(10), np.arange(1), np.arange(3)], max_len=4)
    assert [list(w) for w in windows] == [[6, 7, 8, 9, 10], [2, 3, 4, 5, 6], [1, 2], [1, 2, 3]]  # item rows = index + 1
    assert sum(len(w) - 1 for w in windows) == 9 + 0 + 2


def test_overlapping_windows_still_target_every_transition_once():
    sequences = [np.arange(40), np.arange(7)]
    windows = training_windows(sequences, max_len=30, stride=15)
    n_targets = np.minimum([len(w) - 1 for w in windows], 15)
    targets = window_targets(pad_right(windows, 31), torch.from_numpy(n_targets))
    trained = sorted(targets[targets > 0].tolist())
    assert trained == sorted([*range(2, 41), *range(2, 8)])  # item rows (index + 1) of every item but the first
    assert len(windows[0]) == 31 and (targets[0, :15] == 0).all()  # the newest window: 15 items of context first


@pytest.mark.parametrize("model_class, params_class", [(SASRec, SASRecParams), (HybridSeq, HybridSeqParams)])
def test_training_learns_and_save_load_round_trips(model_class, params_class, tmp_path):
    data = cyclic_split()
    model = model_class(params_class(**TINY, max_epochs=15, patience=15))
    report = model.fit(data)
    assert report.curve[-1]["loss"] < 0.5 * report.curve[0]["loss"]
    assert report.valid_ndcg_at_10 > 0.5  # the next item of a cycle is learnable (random: ~0.15)
    assert report.trainable_parameters == sum(p.numel() for p in model.members.parameters() if p.requires_grad)

    users = np.arange(5)
    histories = [*data.histories("valid")[:4], np.array([], dtype=np.int64)]  # the last user has no history
    scores = model.score(users, histories)
    assert scores.shape == (5, data.n_items) and np.isfinite(scores).all()

    model.save(tmp_path)
    np.testing.assert_array_equal(model_class.load(tmp_path).score(users, histories), scores)


def test_fit_is_deterministic_for_a_seed_and_obeys_max_steps():
    data = cyclic_split()
    first, second = SASRec(SASRecParams(**TINY, max_steps=3)), SASRec(SASRecParams(**TINY, max_steps=3))
    report = first.fit(data)
    second.fit(data)
    assert report.params["steps"] == 3 and len(report.curve) == 1 and report.curve[0]["valid_ndcg_at_10"] is not None
    users = np.arange(4)
    np.testing.assert_array_equal(first.score(users, data.train_sequences), second.score(users, data.train_sequences))


@pytest.mark.parametrize("model_class, params_class", [(SASRec, SASRecParams), (HybridSeq, HybridSeqParams)])
def test_an_ensemble_averages_its_members_and_round_trips(model_class, params_class, tmp_path):
    data = cyclic_split()
    model = model_class(params_class(**TINY, max_epochs=4, patience=4, ensemble=2))
    report = model.fit(data)
    assert len(model.members) == 2 and len(report.params["member_valid_ndcg_at_10"]) == 2
    assert {row["member"] for row in report.curve} == {0, 1}
    users = np.arange(6)
    scores = model.score(users, data.train_sequences)
    assert np.isfinite(scores).all()
    model.save(tmp_path)
    np.testing.assert_allclose(model_class.load(tmp_path).score(users, data.train_sequences), scores, rtol=1e-6)


def test_hybrid_ranks_cold_items_by_text():
    data = two_genre_split()
    model = HybridSeq(HybridSeqParams(**TINY, max_epochs=15, patience=15, id_dropout=0.5))
    model.fit(data)
    users = np.arange(60)
    scifi_fan = users % 2 == 0
    cold, other_cold = np.where(scifi_fan, 20, 21), np.where(scifi_fan, 21, 20)  # cold items matching / not the genre
    scores = model.score(users, data.train_sequences)
    assert (scores[users, cold] > scores[users, other_cold]).mean() >= 0.9
    # ... and the matching cold item ranks above every (warm) item of the other genre: its text put it in the genre.
    other_genre = np.where(scifi_fan[:, None], np.arange(10, 20), np.arange(10))
    assert (scores[users, cold][:, None] > np.take_along_axis(scores, other_genre, 1)).all(1).mean() >= 0.9


def test_hybrid_picks_a_cold_item_offset_on_valid():
    """When valid targets are cold items, a positive offset for items without train interactions wins on valid."""
    data = two_genre_split()
    cold_valid = np.where(np.arange(60) % 2 == 0, 20, 21)  # each user's valid item: the cold item of their genre
    data = replace(data, valid_items=cold_valid)
    model = HybridSeq(HybridSeqParams(**TINY, max_epochs=10, patience=10, id_dropout=0.5))
    report = model.fit(data)
    curve = report.params["cold_offset_curve"]
    assert report.params["cold_offset"] > 0 and report.valid_ndcg_at_10 > curve[0]["valid_ndcg_at_10"]
    assert report.valid_ndcg_at_10 == max(row["valid_ndcg_at_10"] for row in curve)
