"""Explanations for every published recommendation, and their quality (PEPLER's USR, FCR, DIV and FMR).

Built at publish time from the warehouse: each user's whole history in time order (marts.fct_interactions), item
titles and categories (marts.dim_items) and item text embeddings (`encode_texts(item_text)`, a cache read once the
item_embeddings asset has run). `explain_batch` only names history titles and shared categories, so every
explanation is grounded in warehouse rows and the same inputs always give the same sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from lmrec_assets.evaluation.explanations import (
    explain_batch,
    feature_diversity,
    mentioned_features,
    unique_sentence_ratio,
)
from lmrec_assets.models.text import encode_texts


@dataclass(frozen=True)
class Catalogue:
    """dim_items in item_id order, as `explain_batch` wants it (row i = dense item index i)."""

    index: pd.Index  # item_id -> dense index
    titles: list[str]
    categories: list[list[str]]
    embeddings: np.ndarray

    @property
    def vocabulary(self) -> set[str]:
        return {c for item in self.categories for c in item}


def load_catalogue(con: duckdb.DuckDBPyConnection) -> Catalogue:
    items = con.execute("select item_id, title, categories, item_text from marts.dim_items order by item_id").df()
    embeddings, _ = encode_texts(items["item_text"].tolist())
    return Catalogue(
        index=pd.Index(items["item_id"]),
        titles=items["title"].tolist(),
        categories=[[c.strip() for c in (value or "").split("|") if c.strip()] for value in items["categories"]],
        embeddings=embeddings,
    )


def user_histories(con: duckdb.DuckDBPyConnection, catalogue: Catalogue, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    """user_id -> dense item indices of the user's interactions in `splits`, oldest first."""
    frame = con.execute(
        "select user_id, item_id from marts.fct_interactions where split in (select unnest(?)) order by user_id, position",
        [list(splits)],
    ).df()
    if frame.empty:
        return {}
    codes = catalogue.index.get_indexer(frame["item_id"])
    bounds = np.flatnonzero(np.r_[True, frame["user_id"].to_numpy()[1:] != frame["user_id"].to_numpy()[:-1], True])
    users = frame["user_id"].to_numpy()
    return {users[start]: codes[start:end] for start, end in zip(bounds[:-1], bounds[1:])}


def recommendation_explanations(con: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> pd.DataFrame:
    """(model, model_version, user_id, rank, explanation) for every row of recs.latest_recommendations.

    The history is everything the user did (train, valid and test), the same history the lists were made from.
    """
    histories = user_histories(con, catalogue, ("train", "valid", "test"))
    recs = con.execute(
        "select model, model_version, user_id, rank, item_id from recs.latest_recommendations order by model, user_id, rank"
    ).df()
    frames = []
    for _, part in recs.groupby("model", sort=False):
        users = part["user_id"].drop_duplicates().to_numpy()
        # The recommendations check guarantees K contiguous ranks per user, so the rows form a users × K table.
        items = catalogue.index.get_indexer(part["item_id"]).reshape(len(users), -1)
        empty = np.array([], dtype=np.int64)
        sentences = explain_batch([histories.get(u, empty) for u in users], items, catalogue.titles,
                                  catalogue.categories, catalogue.embeddings)
        frames.append(part[["model", "model_version", "user_id", "rank"]].assign(explanation=sentences.ravel().astype(str)))
    columns = ["model", "model_version", "user_id", "rank", "explanation"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def held_out_feature_matching(con: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> tuple[float, int]:
    """FMR on the test split, and the number of users it is measured on.

    PEPLER's FMR asks whether the explanation of a held-out (user, item) pair names the ground-truth feature. Here
    the pair is each user's test item explained from their train + valid history, and the ground truth is the test
    item's categories (a hit: the sentence names at least one of them). An explanation depends only on the history
    and the item, not on the model, so this is one number for all models; and since a sentence can only name
    categories of the item, it measures how often an explanation is category-grounded, not whether it names what
    the user cared about (we have no reviews to tell).
    """
    histories = user_histories(con, catalogue, ("train", "valid"))
    test = con.execute("select user_id, item_id from marts.split_test order by user_id").df()
    if test.empty:
        return float("nan"), 0
    targets = catalogue.index.get_indexer(test["item_id"])
    empty = np.array([], dtype=np.int64)
    sentences = explain_batch([histories.get(u, empty) for u in test["user_id"]], targets[:, None],
                              catalogue.titles, catalogue.categories, catalogue.embeddings)[:, 0]
    found = mentioned_features(list(sentences), catalogue.vocabulary)
    hits = [bool(f & set(catalogue.categories[t])) for f, t in zip(found, targets)]
    return float(np.mean(hits)), len(hits)


def explanation_quality(explanations: pd.DataFrame, catalogue: Catalogue, fmr: float, fmr_users: int) -> pd.DataFrame:
    """Per model: USR (distinct sentences ÷ sentences), FCR (categories named at least once ÷ all categories),
    DIV (mean number of categories two explanations share; lower = more diverse) and the test-split FMR."""
    vocabulary = catalogue.vocabulary
    rows = []
    for (model, version), part in explanations.groupby(["model", "model_version"]):
        sentences = part["explanation"].tolist()
        features = mentioned_features(sentences, vocabulary)
        rows.append({
            "model": model,
            "model_version": version,
            "n_explanations": len(sentences),
            "usr": unique_sentence_ratio(sentences),
            # FCR from the features already found (the same definition as `feature_coverage_ratio`, one pass).
            "fcr": len(set().union(*features)) / len(vocabulary) if vocabulary else float("nan"),
            "div": feature_diversity(features) if len(features) > 1 else float("nan"),
            "fmr": fmr,
            "fmr_n_users": fmr_users,
        })
    return pd.DataFrame(rows, columns=["model", "model_version", "n_explanations", "usr", "fcr", "div", "fmr", "fmr_n_users"])
