"""Grounded, deterministic explanations for recommendations, and PEPLER's explanation-quality metrics.

An explanation names only what the inputs contain: the history items most similar to the recommendation (cosine
of their text embeddings, e.g. `models.text.encode_texts(data.item_text)`) and the categories the recommendation
shares with those items. No language model writes free text here, so nothing can be invented.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

EMPTY_HISTORY = "Popular with viewers like you."


def explain(
    history_items: list[int],
    recommended_item: int,
    item_titles: Sequence[str],
    item_categories: Sequence[Sequence[str]],
    item_embeddings: np.ndarray,
    max_items: int = 2,
) -> str:
    """Why `recommended_item` is shown to a user who watched `history_items` (oldest first).

    E.g. "Because you watched Heat and Ronin: also a crime thriller." — the `max_items` history items whose
    embeddings are most cosine-similar to the recommendation (ties: the more recent), and the recommendation's
    categories (lower-cased, in its own order) that at least one of them shares. Without a shared category:
    "Similar to Heat and Ronin, which you watched."; with an empty history: "Popular with viewers like you.".
    Deterministic: the same inputs always give the same sentence (`explain_batch` gives the same one too).
    """
    batch = explain_batch(
        [np.asarray(history_items, dtype=np.int64)], np.array([[recommended_item]], dtype=np.int64),
        item_titles, item_categories, item_embeddings, max_items,
    )
    return str(batch[0, 0])


def explain_batch(
    histories: Sequence[np.ndarray],
    recommended: np.ndarray,
    item_titles: Sequence[str],
    item_categories: Sequence[Sequence[str]],
    item_embeddings: np.ndarray,
    max_items: int = 2,
) -> np.ndarray:
    """`explain` for a whole top-K table: row j of `recommended` (users × K item indices) goes with `histories[j]`.

    Returns a users × K object array of sentences. Per user, the similarities of the K recommendations to the
    history are one (K × history) matrix product, and the `max_items` best history items per recommendation come
    from one sort of that matrix.
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    if len(histories) != len(recommended):
        raise ValueError(f"recommended has {len(recommended)} rows but there are {len(histories)} histories")
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    embeddings = np.asarray(item_embeddings, dtype=np.float32)
    sentences = np.empty(recommended.shape, dtype=object)
    for row, (history, recs) in enumerate(zip(histories, recommended)):
        past = _recent_first_unique(np.asarray(history, dtype=np.int64))
        if past.size == 0:
            sentences[row] = EMPTY_HISTORY
            continue
        # einsum, not BLAS matmul: for these many small products a threaded BLAS spends most of its time syncing
        # threads (10x slower on a busy 2-core machine).
        similarity = np.einsum("kd,hd->kh", _unit(embeddings[recs]), _unit(embeddings[past]))
        similarity[recs[:, None] == past[None, :]] = -np.inf  # an item never explains itself
        # Stable sort of recent-first history: equal similarities go to the more recent item.
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :max_items]
        for col, rec in enumerate(recs):
            picked = [past[i] for i in order[col] if np.isfinite(similarity[col, i])]
            sentences[row, col] = _sentence(int(rec), picked, item_titles, item_categories)
    return sentences


def _recent_first_unique(history: np.ndarray) -> np.ndarray:
    """History items, most recent first, each once (a re-watch counts at its latest position)."""
    reversed_history = history[::-1]
    _, first = np.unique(reversed_history, return_index=True)
    return reversed_history[np.sort(first)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _categories(item: int, item_categories: Sequence[Sequence[str]]) -> list[str]:
    return list(dict.fromkeys(c.strip().lower() for c in item_categories[item] if c and c.strip()))


def _sentence(rec: int, picked: list[int], titles: Sequence[str], item_categories: Sequence[Sequence[str]]) -> str:
    if not picked:
        return EMPTY_HISTORY
    named = _natural_join([str(titles[i]) for i in picked])
    theirs = {c for i in picked for c in _categories(i, item_categories)}
    shared = [c for c in _categories(rec, item_categories) if c in theirs]
    if not shared:
        return f"Similar to {named}, which you watched."
    return f"Because you watched {named}: also {_category_phrase(shared)}."


def _natural_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _category_phrase(categories: list[str]) -> str:
    """"a thriller", "a crime thriller", "an action thriller"; three or more: "a mix of action, crime and drama"."""
    if len(categories) > 2:
        return f"a mix of {_natural_join(categories)}"
    article = "an" if categories[0][0] in "aeiou" else "a"
    return f"{article} {' '.join(categories)}"


# --- PEPLER explanation metrics ------------------------------------------------------------------------------------
#
# Li, Zhang, Chen. "Personalized Prompt Learning for Explainable Recommendation" (PEPLER), ACM TOIS 2023
# (arXiv:2202.07371), which reuses USR from PETER (Li et al., ACL 2021) and FMR/FCR/DIV from NETE (Li et al.,
# CIKM 2020). Definitions follow the authors' code (lileipisces/PEPLER, utils.py). PEPLER's "features" are single
# aspect words; ours are category names (possibly several words, e.g. "sci-fi", "toys & games"), matched as whole
# phrases, case-insensitively. Note the whole sentence is searched, titles included, as PEPLER searches all tokens.


def mentioned_features(sentences: Sequence[str], feature_vocabulary: Collection[str]) -> list[set[str]]:
    """The vocabulary features each sentence mentions (PEPLER's `feature_detect`), in the vocabulary's spelling."""
    patterns = {f: feature_pattern(f) for f in set(feature_vocabulary) if f}
    found = []
    for sentence in sentences:
        lowered = sentence.lower()
        # The substring test is a cheap filter; the regex then requires whole-phrase boundaries.
        found.append({f for f, p in patterns.items() if f.lower() in lowered and p.search(lowered)})
    return found


def feature_pattern(feature: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(feature.lower())}(?!\w)")


def unique_sentence_ratio(sentences: Sequence[str]) -> float:
    """USR = |distinct sentences| / |sentences| (exact string equality). 1 = every explanation is different."""
    if not sentences:
        raise ValueError("no sentences")
    return len(set(sentences)) / len(sentences)


def feature_matching_ratio(sentences: Sequence[str], features: Sequence[str]) -> float:
    """FMR = (1/N) sum_j 1[features[j] is mentioned in sentences[j]]: how often the ground-truth feature appears."""
    if len(sentences) != len(features):
        raise ValueError(f"{len(sentences)} sentences but {len(features)} ground-truth features")
    if not sentences:
        raise ValueError("no sentences")
    hits = [bool(f) and feature_pattern(f).search(s.lower()) is not None for s, f in zip(sentences, features)]
    return float(np.mean(hits))


def feature_coverage_ratio(sentences: Sequence[str], feature_vocabulary: Collection[str]) -> float:
    """FCR = |features mentioned in at least one sentence| / |feature vocabulary|."""
    vocabulary = set(feature_vocabulary)
    if not vocabulary:
        raise ValueError("empty feature vocabulary")
    mentioned = set().union(*mentioned_features(sentences, vocabulary))
    return len(mentioned) / len(vocabulary)


def feature_diversity(sentences_features: Sequence[Collection[str]]) -> float:
    """DIV = 2 / (N(N - 1)) * sum_{j < l} |F_j ∩ F_l|: mean feature overlap over all pairs of explanations.

    `sentences_features[j]` is the feature set of explanation j (`mentioned_features`). Lower is more diverse.
    """
    n = len(sentences_features)
    if n < 2:
        raise ValueError("feature diversity needs at least two explanations")
    # sum_{j<l} |F_j ∩ F_l| = sum_f C(n_f, 2), n_f = explanations mentioning f: linear instead of N^2 set ops.
    counts = Counter(f for features in sentences_features for f in set(features))
    return float(sum(c * (c - 1) / 2 for c in counts.values()) / (n * (n - 1) / 2))
