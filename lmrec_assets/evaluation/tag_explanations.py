"""User-written reference explanations from ml-latest-small's tags.csv, for the explanation task (issue #6).

Why: the explanation metrics of `generation_assets` compare a model's text with the item's own genres/description,
which every user shares, so they measure recall of item features. MovieLens tags are free text a user wrote about a
movie: a (user, item) pair's tags are the closest thing this data has to a review-like reference explanation.

- One reference per tagged (user, item) pair: its tags in time order, lower-cased, deduplicated, joined by ", ".
- Held out by time, per user: each tagging user's latest `fraction` of pairs (at least one; ordered by the pair's
  first tag timestamp, ties in file order) are evaluation pairs, the rest are training targets. Deterministic.
- A trivial baseline beside the model's numbers: the item's most frequent tag among training pairs (ties:
  alphabetical), else the most frequent training tag overall.

Benchmark-level only (benchmarks/generative_p5.py --dataset mlsmall): ingestion does not load tags.csv.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec_assets.evaluation.generation import feature_metrics, text_metrics

TAG_COLUMNS = ["userId", "movieId", "tag", "timestamp"]


def load_tags(path: Path) -> pd.DataFrame:
    """tags.csv as strings (ids as the movielens-latest-small source keeps them: "1", "60756"), timestamp int64.

    UTF-8, CRLF line endings and RFC-4180 quoting are handled by pandas' CSV parser; `keep_default_na=False` keeps
    tags such as "NA" or "null" as text."""
    frame = pd.read_csv(path, dtype={"userId": str, "movieId": str, "tag": str}, keep_default_na=False, encoding="utf-8")
    missing = set(TAG_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (expected {TAG_COLUMNS})")
    return frame[TAG_COLUMNS].astype({"timestamp": np.int64})


def normalise_tag(tag: str) -> str:
    """Lower-case, whitespace collapsed (so "Dark  Comedy " and "dark comedy" are one tag)."""
    return " ".join(tag.lower().split())


@dataclass(frozen=True)
class TagPairs:
    """Tagged (user, item) pairs in split indices, one row each: user, item, tags (tuple, time order), reference
    (the tags joined by ", "), first_timestamp, held_out (bool). `dropped` counts the tags.csv rows left out, by why."""

    pairs: pd.DataFrame
    dropped: dict[str, int]

    @property
    def train(self) -> pd.DataFrame:
        return self.pairs[~self.pairs.held_out]

    @property
    def held_out(self) -> pd.DataFrame:
        return self.pairs[self.pairs.held_out]


def tag_pairs(tags: pd.DataFrame, user_ids: Sequence[str], item_ids: Sequence[str], fraction: float = 0.2) -> TagPairs:
    """Map tags to the split's user/item indices, one reference per pair, and hold out each user's latest pairs."""
    users = {str(u): i for i, u in enumerate(user_ids)}
    items = {str(i): j for j, i in enumerate(item_ids)}
    frame = tags.assign(order=np.arange(len(tags)), tag=tags.tag.map(normalise_tag),
                        user=tags.userId.map(users), item=tags.movieId.map(items))
    dropped = {"empty tag": int((frame.tag == "").sum()),
               "user not in the split": int(frame.user.isna().sum()),
               "item not in the split": int((frame.user.notna() & frame.item.isna()).sum())}
    frame = frame[(frame.tag != "") & frame.user.notna() & frame.item.notna()].astype({"user": np.int64, "item": np.int64})
    frame = frame.sort_values(["timestamp", "order"], kind="stable")  # time order, ties in file order
    grouped = frame.groupby(["user", "item"], sort=False)
    pairs = grouped.agg(first_timestamp=("timestamp", "first"), order=("order", "first"),
                        tags=("tag", lambda t: tuple(dict.fromkeys(t)))).reset_index()
    pairs["reference"] = pairs.tags.map(", ".join)
    pairs = pairs.sort_values(["user", "first_timestamp", "order"], kind="stable").reset_index(drop=True)
    pairs["held_out"] = latest_per_user(pairs, fraction)
    return TagPairs(pairs.drop(columns="order"), dropped)


def latest_per_user(pairs: pd.DataFrame, fraction: float) -> np.ndarray:
    """Per user, whether a pair is among their latest max(1, round(fraction × n)) pairs; `pairs` must be in time
    order within each user (as `tag_pairs` keeps them). Splits held-out pairs off, and a valid split off the training
    pairs by the same rule."""
    from_latest = pairs.groupby("user").cumcount(ascending=False)
    held = pairs.user.map(pairs.user.value_counts().map(lambda n: max(1, int(fraction * n + 0.5))))
    return (from_latest < held).to_numpy()


def most_frequent_tag(train: pd.DataFrame, held_out: pd.DataFrame) -> list[str]:
    """Per held-out pair: its item's most frequent tag over training pairs (a pair counts a tag once; ties:
    alphabetical), or the most frequent training tag overall when no training pair tagged that item."""
    if train.empty:
        raise ValueError("no training pairs: the baseline needs at least one")
    per_item: dict[int, Counter] = {}
    for item, item_tags in zip(train.item, train.tags):
        per_item.setdefault(int(item), Counter()).update(item_tags)
    overall = _top(sum(per_item.values(), Counter()))
    return [_top(per_item[item]) if item in per_item else overall for item in held_out.item.astype(int)]


def _top(counts: Counter) -> str:
    return min(counts, key=lambda tag: (-counts[tag], tag))


def item_features(pairs: pd.DataFrame, item_categories: Sequence[Sequence[str]]) -> list[set[str]]:
    """What each item has: every tag any user gave it (all pairs, held out too: the item's real tags) and its
    genres, lower-cased. A tag an explanation names outside this set is a hallucination."""
    features = [{normalise_tag(g) for g in genres if not g.startswith("(")} for genres in item_categories]
    for item, tags in zip(pairs.item, pairs.tags):
        features[int(item)].update(tags)
    return features


def hallucinated(explanations: Sequence[str], items: Sequence[int], features: Sequence[set[str]],
                 normalise: Callable[[str], str]) -> np.ndarray:
    """Per tag-list explanation ("a, b"): whether it names something its item does not have (`item_features`),
    compared in the form the explanations are written in. An empty explanation names nothing."""
    normal = {}
    def has(item: int, piece: str) -> bool:
        if item not in normal:
            normal[item] = {normalise(f) for f in features[item]}
        return piece in normal[item]
    return np.array([any(not has(int(item), piece) for piece in (p.strip() for p in text.split(",")) if piece)
                     for text, item in zip(explanations, items)], dtype=bool)


def blend(lm_scores: np.ndarray, similarity: np.ndarray, weight: float) -> np.ndarray:
    """One pair's candidates scored by z(language-model score) + weight × z(similarity), each standardised over the
    candidates the LM can write (the two live on different scales); one it cannot write (-inf) stays -inf, so what is
    picked is still text the LM could have written. weight = inf: similarity alone, every candidate."""
    lm, similarity = np.asarray(lm_scores, dtype=float), np.asarray(similarity, dtype=float)
    z = lambda x: (x - x.mean()) / (x.std() or 1.0)  # noqa: E731
    if np.isinf(weight):
        return z(similarity)
    out, writable = np.full(len(lm), -np.inf), np.isfinite(lm)
    if writable.any():
        out[writable] = z(lm[writable]) + weight * z(similarity[writable])
    return out


def explanation_metrics(
    sentences: Sequence[str], held_out: pd.DataFrame, vocabulary: Sequence[str], normalise: Callable[[str], str]
) -> dict[str, float]:
    """BLEU-1/4, ROUGE-1/2/L F1 and USR against each pair's reference, and FMR/FCR/DIV with the tags as features
    (ground truth: the pair's own tags). `normalise` puts references and tags in the form the sentences are written
    in (e.g. the model's tokenizer round trip); the sentences must already be in it."""
    references = [normalise(r) for r in held_out.reference]
    features = {tag: normalise(tag) for tag in vocabulary}
    truth = [[features[t] for t in pair_tags] for pair_tags in held_out.tags]
    return {**text_metrics(list(sentences), references),
            **feature_metrics(list(sentences), truth, {f for f in features.values() if f})}
