"""The bundled demo data set: shape, determinism, integrity and the signals it plants for the recommenders."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lmrec_assets.ingestion.sources.base import (
    AGE_BRACKETS,
    ERROR_COLUMN,
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    SourceData,
)
from lmrec_assets.ingestion.sources.demo import (
    _PHRASES,
    GENRE_WORDS,
    GENRES,
    OCCUPATIONS,
    SPAN,
    START,
    demo_size,
    generate_demo,
)


@pytest.fixture(scope="module")
def demo() -> SourceData:
    return generate_demo()


@pytest.fixture(scope="module")
def events(demo: SourceData) -> pd.DataFrame:
    """Interactions with typed columns and the item's genre set, in frame order."""
    frame = demo.interactions.frame
    genres = demo.items.frame.set_index("item_id")["categories"].str.split("|").map(frozenset)
    return pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "timestamp": frame["timestamp"].astype(np.int64),
            "rating": frame["rating"].astype(np.int64),
            "genres": genres.reindex(frame["item_id"]).to_numpy(),
        }
    )


def _genre_counts(events: pd.DataFrame) -> pd.DataFrame:
    """Per user, how many of their items carry each genre."""
    exploded = events[["user_id", "genres"]].explode("genres")
    return exploded.groupby(["user_id", "genres"]).size().unstack(fill_value=0).reindex(columns=GENRES, fill_value=0)


def _top3_coverage(events: pd.DataFrame) -> float:
    """Mean over users of the share of their events whose item has one of the user's three most frequent genres."""
    counts = _genre_counts(events)
    top3 = pd.Series([frozenset(counts.columns[np.argsort(-row)[:3]]) for row in counts.to_numpy()], index=counts.index)
    hit = [bool(genres & top3[user]) for user, genres in zip(events["user_id"], events["genres"])]
    return pd.Series(hit).groupby(events["user_id"].to_numpy()).mean().mean()


# --- sizes and determinism -------------------------------------------------------------------------------------------


def test_demo_size_anchors_and_growth() -> None:
    assert demo_size(1) == (1_000, 1_500, 50_000)
    assert demo_size(200) == (100_000, 50_000, 10_000_000)  # the benchmark size
    small, big = demo_size(2), demo_size(20)
    assert all(a < b for a, b in zip(small, big))
    n_users, n_items, n_interactions = demo_size(0.01)
    assert n_users >= 1 and n_items >= 50 and n_interactions >= 5 * n_users
    with pytest.raises(ValueError):
        demo_size(0)


def test_same_arguments_give_identical_frames(demo: SourceData) -> None:
    again = generate_demo()
    pairs = ((demo.interactions, again.interactions), (demo.items, again.items), (demo.users, again.users))
    for first, second in pairs:
        pd.testing.assert_frame_equal(first.frame, second.frame)
        assert first.sha256 == second.sha256
    other = generate_demo(seed=8)
    assert other.interactions.sha256 != demo.interactions.sha256
    assert other.items.sha256 != demo.items.sha256


def test_catalogue_depends_only_on_seed_and_item_count(demo: SourceData) -> None:
    smaller = generate_demo(n_users=200, n_items=1500, n_interactions=8_000)
    pd.testing.assert_frame_equal(smaller.items.frame, demo.items.frame)


def test_sizes_and_source_files(demo: SourceData) -> None:
    assert len(demo.users.frame) == 1_000
    assert len(demo.items.frame) == 1_500
    assert 0.95 * 50_000 <= len(demo.interactions.frame) <= 50_000
    base = "demo://seed=7,users=1000,items=1500,interactions=50000"
    assert demo.interactions.source_file == f"{base}#interactions"
    assert demo.items.source_file == f"{base}#items"
    assert demo.users.source_file == f"{base}#users"
    assert len({demo.interactions.batch_id, demo.items.batch_id, demo.users.batch_id}) == 3


@pytest.mark.parametrize("scale", [0.001, 0.01, 0.05, 3])
def test_other_scales_keep_the_guarantees(scale: float) -> None:
    n_users, n_items, n_interactions = demo_size(scale)
    source = generate_demo(3, n_users, n_items, n_interactions)
    interactions = source.interactions.frame
    per_user = interactions.groupby("user_id").size()
    assert per_user.min() >= 5
    assert set(per_user.index) == set(source.users.frame["user_id"])
    assert len(source.items.frame) == n_items
    assert 0.95 * n_interactions <= len(interactions) <= n_interactions
    assert not interactions.duplicated(["user_id", "item_id"]).any()


def test_impossible_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="interactions"):
        generate_demo(n_users=100, n_items=500, n_interactions=400)  # fewer than 5 per user
    with pytest.raises(ValueError, match="items"):
        generate_demo(n_users=10, n_items=10, n_interactions=100)


# --- frames ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "columns"), [("interactions", INTERACTION_COLUMNS), ("items", ITEM_COLUMNS), ("users", USER_COLUMNS)]
)
def test_frames_are_canonical_strings(demo: SourceData, entity: str, columns: list[str]) -> None:
    frame = getattr(demo, entity).frame
    assert list(frame.columns) == [*columns, "source_row", ERROR_COLUMN]
    for column in columns:
        assert pd.api.types.is_string_dtype(frame[column]), column
        assert frame[column].notna().all(), column
        assert all(isinstance(value, str) for value in frame[column].head(50)), column
    assert frame["source_row"].tolist() == list(range(1, len(frame) + 1))
    assert frame[ERROR_COLUMN].isna().all()


def test_ids_are_unique_and_every_interaction_is_known(demo: SourceData) -> None:
    users, items, interactions = demo.users.frame, demo.items.frame, demo.interactions.frame
    assert users["user_id"].is_unique and items["item_id"].is_unique
    assert interactions["user_id"].isin(users["user_id"]).all()
    assert interactions["item_id"].isin(items["item_id"]).all()
    assert set(interactions["user_id"]) == set(users["user_id"])  # every user has a history


def test_no_repeated_pairs_and_minimum_history(events: pd.DataFrame) -> None:
    assert not events.duplicated(["user_id", "item_id"]).any()
    per_user = events.groupby("user_id").size()
    assert per_user.min() >= 5
    assert per_user.max() >= 200  # heavy tail: some users with hundreds of events
    assert per_user.median() < per_user.mean()


def test_values_are_in_range(demo: SourceData, events: pd.DataFrame) -> None:
    assert events["timestamp"].between(START, START + SPAN - 1).all()
    assert set(events["rating"]) == {1, 2, 3, 4, 5}
    assert events.groupby("user_id")["timestamp"].apply(lambda t: bool(np.all(np.diff(t.to_numpy()) > 0))).all()
    users = demo.users.frame
    assert set(users["gender"]) == {"F", "M"}
    assert set(users["age_bracket"]) <= set(AGE_BRACKETS)
    assert set(users["occupation"]) <= set(OCCUPATIONS)
    categories = demo.items.frame["categories"].str.split("|")
    assert categories.map(len).between(1, 3).all()
    assert set(categories.explode()) == set(GENRES)
    assert demo.items.frame["title"].is_unique


# --- planted signals ------------------------------------------------------------------------------------------------


def test_cold_items_show_up_late(demo: SourceData, events: pd.DataFrame) -> None:
    late = START + 0.95 * SPAN
    first_seen = events.groupby("item_id")["timestamp"].min()
    cold = set(first_seen.index[first_seen >= late])
    assert 0.01 * len(demo.items.frame) <= len(cold) <= 0.06 * len(demo.items.frame)
    last_events = events.loc[events.groupby("user_id")["timestamp"].idxmax()]
    assert last_events["item_id"].isin(cold).sum() >= 10  # some users end on an item nobody had before


def test_every_genre_phrase_carries_its_own_words_only() -> None:
    for genre, parts in _PHRASES.items():
        for phrase in (phrase for part in parts for phrase in part):
            words = set(re.findall(r"[a-z]+", phrase.lower()))
            assert words & GENRE_WORDS[genre], (genre, phrase)
            assert all(not words & GENRE_WORDS[other] for other in GENRES if other != genre), (genre, phrase)


def test_descriptions_name_every_genre_of_their_item(demo: SourceData) -> None:
    items = demo.items.frame
    for categories, description in zip(items["categories"], items["description"]):
        words = set(re.findall(r"[a-z]+", description.lower()))
        assert description.endswith(".") and description[0].isupper()
        for genre in categories.split("|"):
            assert words & GENRE_WORDS[genre], (categories, description)


def test_users_concentrate_on_a_few_genres(events: pd.DataFrame) -> None:
    coverage = _top3_coverage(events)
    shuffled = _top3_coverage(events.assign(genres=events["genres"].sample(frac=1, random_state=0).to_numpy()))
    assert coverage > 0.8
    assert coverage > shuffled + 0.1


def test_consecutive_events_tend_to_share_a_genre(events: pd.DataFrame) -> None:
    """The sequential signal: the next item shares a genre with the previous one more than with an older one."""
    users, genres = events["user_id"].to_numpy(), events["genres"].to_numpy()

    def shared(lag: int) -> float:
        same_user = users[lag:] == users[:-lag]
        overlap = np.fromiter((bool(a & b) for a, b in zip(genres[:-lag], genres[lag:])), bool)
        return overlap[same_user].mean()

    assert shared(1) > shared(5) + 0.1


def test_ratings_follow_taste(events: pd.DataFrame) -> None:
    favourite = _genre_counts(events).idxmax(axis=1)
    in_favourite = np.array([favourite[u] in g for u, g in zip(events["user_id"], events["genres"])])
    assert events["rating"][in_favourite].mean() > events["rating"][~in_favourite].mean() + 0.3


def test_planted_gender_difference_in_taste_entropy(demo: SourceData, events: pd.DataFrame) -> None:
    """Users with gender "F" have noisier tastes (documented in the demo module), so their genre mix is wider."""
    counts = _genre_counts(events)
    share = counts.to_numpy(dtype=float) / counts.to_numpy().sum(axis=1, keepdims=True)
    entropy = -np.where(share > 0, share * np.log(np.where(share > 0, share, 1.0)), 0.0).sum(axis=1)
    gender = demo.users.frame.set_index("user_id")["gender"].reindex(counts.index).to_numpy()
    assert entropy[gender == "F"].mean() > entropy[gender == "M"].mean() + 0.03
