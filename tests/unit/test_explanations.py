"""Explanations name only what the inputs contain, are deterministic, and PEPLER's metrics match hand counts."""

import re

import numpy as np
import pytest

from lmrec_assets.evaluation.explanations import (
    EMPTY_HISTORY,
    explain,
    explain_batch,
    feature_coverage_ratio,
    feature_diversity,
    feature_matching_ratio,
    mentioned_features,
    unique_sentence_ratio,
)

TITLES = ["Heat", "Ronin", "Toy Story", "Casino", "Collateral", "Microcosmos", "Speed"]
CATEGORIES = [
    ["Crime", "Thriller"],
    ["Action", "Crime", "Thriller"],
    ["Animation", "Children's", "Comedy"],
    ["Crime", "Drama"],
    ["Crime", "Thriller"],
    ["Documentary"],
    ["Action", "Romance", "Thriller"],
]
# Collateral (4) is closest to Heat, then Ronin; Microcosmos (5) is closest to Toy Story, then Casino.
EMBEDDINGS = np.array([
    [1.0, 0.0, 0.0],
    [0.8, 0.6, 0.0],
    [0.0, 0.0, 1.0],
    [0.0, 0.9, 0.1],
    [0.95, 0.3, 0.0],
    [0.0, 0.3, 0.95],
    [0.7, 0.7, 0.1],
])


def test_hand_made_explanations():
    def say(history: list[int], item: int, max_items: int = 2) -> str:
        return explain(history, item, TITLES, CATEGORIES, EMBEDDINGS, max_items)

    history = [2, 0, 1, 3]
    assert say(history, 4) == "Because you watched Heat and Ronin: also a crime thriller."
    assert say(history, 5) == "Similar to Toy Story and Casino, which you watched."
    assert say(history, 4, max_items=1) == "Because you watched Heat: also a crime thriller."
    assert say([1], 6) == "Because you watched Ronin: also an action thriller."
    assert say([], 4) == EMPTY_HISTORY
    assert say([4], 4) == EMPTY_HISTORY  # an item never explains itself


def test_three_shared_categories_read_as_a_list():
    categories = [["Action", "Sci-Fi", "War"], ["Action", "Sci-Fi", "War", "Drama"]]
    sentence = explain([0], 1, ["Aliens", "Starship Troopers"], categories, np.eye(2))
    assert sentence == "Because you watched Aliens: also a mix of action, sci-fi and war."


def test_equal_similarity_goes_to_the_more_recent_item():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    sentence = explain([0, 1], 2, ["Old", "New", "Rec"], [[], [], []], embeddings, max_items=1)
    assert sentence == "Similar to New, which you watched."


def test_explanations_name_only_inputs_and_are_deterministic():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_items, n_categories = int(rng.integers(5, 40)), int(rng.integers(1, 8))
        titles = [f"Title_{i}" for i in range(n_items)]
        categories = [
            [f"Cat_{c}" for c in rng.choice(n_categories, size=rng.integers(0, n_categories + 1), replace=False)]
            for _ in range(n_items)
        ]
        embeddings = rng.normal(size=(n_items, 8))
        n_users, k = 6, 3
        histories = [rng.choice(n_items, size=rng.integers(0, 8)) for _ in range(n_users)]  # repeats allowed
        recommended = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n_users)])
        max_items = int(rng.integers(1, 4))

        sentences = explain_batch(histories, recommended, titles, categories, embeddings, max_items)
        again = explain_batch(histories, recommended, titles, categories, embeddings, max_items)
        assert (sentences == again).all()
        for row in range(n_users):
            for col in range(k):
                sentence, rec = sentences[row, col], int(recommended[row, col])
                named = {int(t) for t in re.findall(r"Title_(\d+)", sentence)}
                said = set(re.findall(r"cat_\d+", sentence))
                assert named <= set(histories[row].tolist()) - {rec}
                assert len(named) <= max_items
                rec_categories = {c.lower() for c in categories[rec]}
                history_categories = {c.lower() for i in named for c in categories[i]}
                assert said <= rec_categories & history_categories
                assert sentence == explain(histories[row].tolist(), rec, titles, categories, embeddings, max_items)


def test_batch_is_fast_for_a_realistic_table():
    rng = np.random.default_rng(1)
    n_items, n_users, k = 1682, 1000, 10
    titles = [f"Movie {i}" for i in range(n_items)]
    genres = ["Crime", "Drama", "Comedy", "Thriller"]
    categories = [list(rng.choice(genres, size=2, replace=False)) for _ in range(n_items)]
    embeddings = rng.normal(size=(n_items, 384)).astype(np.float32)
    histories = [rng.choice(n_items, size=rng.integers(5, 200)) for _ in range(n_users)]
    recommended = rng.integers(0, n_items, size=(n_users, k))
    sentences = explain_batch(histories, recommended, titles, categories, embeddings)
    assert sentences.shape == (n_users, k) and all(isinstance(s, str) and s for s in sentences.ravel())


# --- PEPLER metrics ------------------------------------------------------------------------------------------------

SENTENCES = [
    "Because you watched Heat: also a crime thriller.",
    "Because you watched Heat: also a crime thriller.",
    "Similar to Toy Story, which you watched.",
    "Because you watched Alien: also a sci-fi horror.",
]
VOCABULARY = ["Crime", "Thriller", "Sci-Fi", "Horror", "Comedy", "Drama"]


def test_pepler_metrics_on_a_fixed_example():
    assert unique_sentence_ratio(SENTENCES) == pytest.approx(3 / 4)
    found = mentioned_features(SENTENCES, VOCABULARY)
    assert found == [{"Crime", "Thriller"}, {"Crime", "Thriller"}, set(), {"Sci-Fi", "Horror"}]
    assert feature_coverage_ratio(SENTENCES, VOCABULARY) == pytest.approx(4 / 6)
    assert feature_matching_ratio(SENTENCES, ["Crime", "Drama", "Comedy", "horror"]) == pytest.approx(2 / 4)
    # six pairs; only the two identical sentences overlap, in two features
    assert feature_diversity(found) == pytest.approx(2 / 6)


def test_features_match_whole_phrases_only():
    assert mentioned_features(["a melodrama about crimes"], ["Drama", "Crime"]) == [set()]
    assert mentioned_features(["also a children's comedy."], ["Children's", "Comedy"]) == [{"Children's", "Comedy"}]


def test_feature_diversity_matches_pairwise_intersections():
    rng = np.random.default_rng(2)
    sets = [set(rng.choice(list("abcdefg"), size=rng.integers(0, 5), replace=False)) for _ in range(30)]
    pairwise = [len(sets[i] & sets[j]) for i in range(30) for j in range(i + 1, 30)]
    assert feature_diversity(sets) == pytest.approx(np.mean(pairwise))
