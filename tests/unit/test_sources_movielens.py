"""The MovieLens loaders on the real files in ../shared/data: exact counts, decoding, and a clean validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmrec_assets.ingestion.sources.base import ERROR_COLUMN, SourceData
from lmrec_assets.ingestion.sources.movielens import load_movielens
from lmrec_assets.ingestion.validate import validate_interactions, validate_items, validate_users

SHARED_DATA = Path(os.environ.get("LMREC_SHARED_DATA") or Path(__file__).parents[2].parent / "shared" / "data")

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent (set LMREC_SHARED_DATA)"
    ),
]


@pytest.fixture(scope="module")
def ml100k() -> SourceData:
    return load_movielens("movielens-100k", SHARED_DATA / "ml-100k")


@pytest.fixture(scope="module")
def latest_small() -> SourceData:
    return load_movielens("movielens-latest-small", SHARED_DATA / "ml-latest-small")


def tables(data: SourceData):
    return [t for t in (data.interactions, data.items, data.users) if t is not None]


def test_ml100k_counts(ml100k: SourceData) -> None:
    assert len(ml100k.interactions.frame) == 100_000
    assert len(ml100k.users.frame) == 943
    assert len(ml100k.items.frame) == 1_682
    assert ml100k.interactions.frame["user_id"].nunique() == 943


def test_ml100k_latin1_titles_and_genres(ml100k: SourceData) -> None:
    titles = ml100k.items.frame.set_index("item_id")["title"]
    assert titles["1633"] == "Á köldum klaka (Cold Fever) (1994)"
    assert titles["543"] == "Misérables, Les (1995)"
    categories = ml100k.items.frame.set_index("item_id")["categories"]
    assert categories["1"] == "Animation|Children's|Comedy"
    assert categories["267"] == ""  # only the "unknown" genre flag is set: no category
    assert ml100k.items.frame["description"].isna().all()


def test_ml100k_users(ml100k: SourceData) -> None:
    first = ml100k.users.frame.iloc[0]
    assert (first["user_id"], first["gender"], first["age_bracket"], first["occupation"]) == (
        "1", "M", "18-24", "technician",
    )


def test_ml100k_batch_id_is_the_file_hash(ml100k: SourceData) -> None:
    # sha256 of u.data as listed in shared/data/README.md
    assert ml100k.interactions.sha256 == "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
    assert ml100k.interactions.batch_id == "06416e597f82b734"


def test_latest_small_counts(latest_small: SourceData) -> None:
    assert len(latest_small.interactions.frame) == 100_836
    assert latest_small.interactions.frame["user_id"].nunique() == 610
    assert len(latest_small.items.frame) == 9_742
    assert latest_small.users is None


def test_latest_small_quoted_commas_and_genres(latest_small: SourceData) -> None:
    items = latest_small.items.frame.set_index("item_id")
    assert items.loc["11", "title"] == "American President, The (1995)"
    assert items.loc["11", "categories"] == "Comedy|Drama|Romance"
    assert (items["categories"] == "").sum() == 34  # "(no genres listed)"
    assert not items["categories"].str.contains("no genres").any()
    assert latest_small.items.frame["source_row"].iloc[0] == 2  # line 1 is the header


@pytest.mark.parametrize("name", ["ml100k", "latest_small"])
def test_no_loader_errors_and_no_carriage_returns(name: str, request: pytest.FixtureRequest) -> None:
    data: SourceData = request.getfixturevalue(name)
    for table in tables(data):
        frame = table.frame
        assert frame[ERROR_COLUMN].isna().all(), table.source_file
        for column in frame.columns.drop(["source_row", ERROR_COLUMN]):
            values = frame[column].dropna()
            assert not values.str.contains("\r", regex=False).any(), (table.source_file, column)


@pytest.mark.parametrize("name", ["ml100k", "latest_small"])
def test_real_data_is_fully_accepted(name: str, request: pytest.FixtureRequest) -> None:
    data: SourceData = request.getfixturevalue(name)
    items = validate_items(data.items)
    users = validate_users(data.users) if data.users is not None else None
    interactions = validate_interactions(
        data.interactions, set(items.accepted["item_id"]), set(users.accepted["user_id"]) if users else None
    )
    for validated, table in ((items, data.items), (users, data.users), (interactions, data.interactions)):
        if validated is None:
            continue
        assert len(validated.rejected) == 0, validated.rejected.head().to_dict("records")
        assert len(validated.accepted) == validated.n_read == len(table.frame)
    ratings = interactions.accepted["rating"]
    assert interactions.accepted["timestamp"].dtype == "int64" and ratings.dtype == "float64"
    assert ratings.notna().all()
