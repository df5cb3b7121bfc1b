"""Fairness of recommendations: user-group accuracy gaps, item exposure, and counterfactual prompt fairness.

Three views, all pure functions over arrays the evaluation already produces:

- user side: HR@k / NDCG@k per user group (gender, age bracket, occupation, activity level) with fairlearn's
  `MetricFrame`, and the between-group ratio / difference / worst group per attribute;
- item side: how exposure (slots in the top-K tables) spreads over the catalogue — Gini, Lorenz curve, coverage,
  popularity lift and long-tail share;
- counterfactual prompts (FaiRLLM, Zhang et al., RecSys 2023): how much a language-model recommender's top-K moves
  when the prompt names a sensitive attribute value, compared across the values of that attribute (SNSR / SNSV).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

# --- user side ---------------------------------------------------------------------------------------------------


def user_group_metrics(ranks: np.ndarray, groups: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """HR@k and NDCG@k per group of every attribute column in `groups`, with between-group summaries.

    `ranks[j]` is the 1-based full-ranking rank of user j's held-out item (`ranking.target_ranks`); row j of `groups`
    holds that user's attributes (e.g. gender, age_bracket, occupation, activity_level). Each column is treated as
    categorical (pass brackets, not raw numbers). Missing values (NaN/None) mean "unknown": those users are left out
    of that attribute only. Per user, HR@k = [rank <= k] and NDCG@k = [rank <= k] / log2(rank + 1), exactly as
    `ranking.metrics_from_ranks`; a group's value is the mean over its users.

    Long format, one row per (attribute, group, metric), sorted by attribute, metric, group:
        attribute    column name in `groups`
        group        the attribute value, as a string
        metric       "hr@{k}" or "ndcg@{k}"
        value        the metric over the group's users
        n_users      users in the group
        overall      the metric over all users with a known value of the attribute
        ratio        min / max of the group values (fairlearn `MetricFrame.ratio()`; 1 = parity, also when all are 0)
        difference   max - min of the group values (fairlearn `MetricFrame.difference()`; 0 = parity)
        worst_group  the group with the lowest value (ties: first group in sorted order)
    The last four are per (attribute, metric) summaries, repeated on each of its rows so the table stays flat.
    Small groups give noisy values: filter on `n_users` before reading `worst_group`.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) != len(groups):
        raise ValueError(f"ranks has {len(ranks)} users but groups has {len(groups)} rows")
    metrics = {f"hr@{k}": _hit_rate(k), f"ndcg@{k}": _ndcg(k)}
    frames = []
    for attribute in groups.columns:
        known = groups[attribute].notna().to_numpy()
        if not known.any():
            continue
        values = groups[attribute][known].astype(str).to_numpy()
        # fairlearn's metric signature is (y_true, y_pred); the rank is the whole observation, so it goes in both.
        frame = MetricFrame(metrics=metrics, y_true=ranks[known], y_pred=ranks[known], sensitive_features=values)
        by_group = frame.by_group
        counts = pd.Series(values).value_counts()
        ratio, difference = frame.ratio(), frame.difference()
        for metric in metrics:
            column = by_group[metric].astype(float)
            frames.append(pd.DataFrame({
                "attribute": attribute,
                "group": column.index.astype(str),
                "metric": metric,
                "value": column.to_numpy(),
                "n_users": counts.reindex(column.index).to_numpy(),
                "overall": float(frame.overall[metric]),
                "ratio": float(ratio[metric]) if column.max() > 0 else 1.0,
                "difference": float(difference[metric]),
                "worst_group": str(column.idxmin()),
            }))
    columns = ["attribute", "group", "metric", "value", "n_users", "overall", "ratio", "difference", "worst_group"]
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True)[columns]
    return table.sort_values(["attribute", "metric", "group"], kind="stable", ignore_index=True)


def _hit_rate(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def hr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(np.asarray(y_pred) <= k))

    return hr


def _ndcg(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def ndcg(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        ranks = np.asarray(y_pred, dtype=np.float64)
        return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))

    return ndcg


# --- item side ---------------------------------------------------------------------------------------------------


def item_exposure(recommended: np.ndarray, n_items: int) -> np.ndarray:
    """Exposure count of every catalogue item: how many top-K slots (over all users) show it. Shape (n_items,)."""
    items = np.asarray(recommended, dtype=np.int64).ravel()
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"recommended item indices must lie in [0, {n_items})")
    return np.bincount(items, minlength=n_items)


def exposure_gini(recommended: np.ndarray, n_items: int) -> float:
    """Gini coefficient of item exposure over the whole catalogue (0 = every item shown equally often).

    With exposure counts sorted ascending x_(1) <= ... <= x_(n) over all n catalogue items (never-shown items count
    as 0): G = sum_i (2i - n - 1) x_(i) / (n sum_i x_i). One item taking every slot gives (n - 1) / n, i.e. ~1.
    This is the standard (unnormalised) Gini coefficient applied to recommendation exposure, as in studies of
    sales concentration under recommenders (Fleder & Hosanagar, Management Science 2009); it equals
    1 - 2 * (area under `lorenz_curve`). Exposure is a count of slots, not position-weighted.
    """
    exposure = np.sort(item_exposure(recommended, n_items)).astype(np.float64)
    total = exposure.sum()
    if total == 0:
        raise ValueError("no recommendations: exposure Gini is undefined")
    n = len(exposure)
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * exposure) / (n * total))


def lorenz_curve(exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of the Lorenz curve of `exposure` (e.g. `item_exposure(...)`), for plotting.

    Returns (item_share, exposure_share), both of length n + 1 and starting at (0, 0): after sorting items by
    exposure ascending, the least-exposed `item_share[i]` of the catalogue receive `exposure_share[i]` of all slots.
    The diagonal is perfect equality.
    """
    values = np.sort(np.asarray(exposure, dtype=np.float64))
    total = values.sum()
    if total == 0:
        raise ValueError("all exposure is zero: the Lorenz curve is undefined")
    item_share = np.arange(len(values) + 1) / len(values)
    exposure_share = np.concatenate([[0.0], np.cumsum(values) / total])
    return item_share, exposure_share


def catalogue_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top-K (aggregate diversity)."""
    return float(np.mean(item_exposure(recommended, n_items) > 0))


def popularity_lift(recommended: np.ndarray, train_item_counts: np.ndarray, histories: Sequence[np.ndarray]) -> float:
    """Popularity lift of the recommendations over the users' own train histories.

    Abdollahpouri et al., "The Unfairness of Popularity Bias in Recommendation" (RMSE@RecSys 2019) define the
    group average popularity GAP(g) = (1/|g|) sum_{u in g} (sum_{i in L_u} phi(i) / |L_u|), where phi(i) is the
    item's popularity in the training data and L_u is either user u's profile (GAP_p) or top-K list (GAP_r);
    "User-centered Evaluation of Popularity Bias in Recommender Systems" (Abdollahpouri et al., UMAP 2021) name
    PL = (GAP_r - GAP_p) / GAP_p the popularity lift. Here the group is all users in `recommended` whose history is
    non-empty, phi(i) = `train_item_counts[i]` (the scale cancels in the ratio), and row j of `recommended` goes
    with `histories[j]` (the items the model conditioned on). PL > 0: the lists are more popular than what the users
    watched; 0: as popular; -1 would be lists made only of never-seen-in-train items. (1 + PL is the plain ratio
    mean recommended popularity / mean history popularity.)
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    popularity = np.asarray(train_item_counts, dtype=np.float64)
    if len(histories) != len(recommended):
        raise ValueError(f"recommended has {len(recommended)} rows but there are {len(histories)} histories")
    lengths = np.array([len(h) for h in histories])
    keep = lengths > 0
    if not keep.any():
        raise ValueError("every history is empty: the profile popularity is undefined")
    profile = np.array([popularity[np.asarray(h, dtype=np.int64)].mean() for h, ok in zip(histories, keep) if ok])
    gap_p = profile.mean()
    gap_r = popularity[recommended[keep]].mean(axis=1).mean()
    if gap_p == 0:
        raise ValueError("the users' histories have zero train popularity: the lift is undefined")
    return float((gap_r - gap_p) / gap_p)


def long_tail_share(recommended: np.ndarray, train_item_counts: np.ndarray, head_share: float = 0.2) -> float:
    """Share of recommended slots that show a long-tail item.

    The short head is the ceil(head_share * n_items) items with the most train interactions (ties by lower item
    index, the project's tie rule); every other item, including never-interacted ones, is long tail. With one
    equal-length list per user this equals APLT, the average percentage of long-tail items per list (Abdollahpouri
    et al., "Managing Popularity Bias in Recommender Systems with Personalized Re-ranking", FLAIRS 2019).
    """
    counts = np.asarray(train_item_counts)
    n_head = int(np.ceil(head_share * len(counts)))
    head = np.zeros(len(counts), dtype=bool)
    head[np.argsort(-counts, kind="stable")[:n_head]] = True
    return float(np.mean(~head[np.asarray(recommended, dtype=np.int64)]))


# --- counterfactual prompt fairness (FaiRLLM) ----------------------------------------------------------------------
#
# Zhang, Bao, Zhang, Wang, Feng, He. "Is ChatGPT Fair for Recommendation? Evaluating Fairness in Large Language
# Model Recommendation", RecSys 2023 (arXiv:2305.07609). For each instruction m, R_m is the top-K list from the
# neutral prompt and R_m^a the list from the same prompt naming sensitive value a. A similarity Sim(R_m, R_m^a) is
# averaged over instructions per value a; SNSR and SNSV measure how unequal those averages are across the values
# of one attribute (ideal fairness: every value's list is equally similar to the neutral one).


def _dedup(items: Sequence, k: int) -> list:
    """The first k entries with repeats dropped (an LLM can repeat an item; a rank is its first occurrence)."""
    return list(dict.fromkeys(list(items)[:k]))


def _k(neutral: Sequence, sensitive: Sequence, k: int | None) -> int:
    return k if k is not None else max(len(neutral), len(sensitive))


def jaccard_at_k(a: Sequence, b: Sequence, k: int | None = None) -> float:
    """Jaccard@K = |A ∩ B| / |A ∪ B| over the item sets of the two top-K lists (order ignored).

    FaiRLLM's first similarity. Two empty lists are identical (1.0).
    """
    k = _k(a, b, k)
    set_a, set_b = set(list(a)[:k]), set(list(b)[:k])
    union = set_a | set_b
    return len(set_a & set_b) / len(union) if union else 1.0


def serp_at_k(neutral: Sequence, sensitive: Sequence, k: int | None = None) -> float:
    """SERP*@K: rank-weighted overlap of the sensitive list with the neutral list (FaiRLLM).

        SERP*@K = sum_{v in R^a} 1[v in R] * (K - r^a_v + 1) / (K (K + 1) / 2)

    where R = neutral top-K, R^a = sensitive top-K and r^a_v in {1..K} is v's rank in R^a. It adapts SERP-MS
    (Tomlein et al., 2021) with the misinformation score replaced by membership in R: an overlap near the top of R^a
    weighs K, at the bottom 1. Identical lists score 1, disjoint 0; only the ranks in R^a matter. K defaults to the
    longer list's length; lists are cut to K and repeats dropped. The paper averages this over instructions m.
    (The authors' released notebook, process.ipynb, computes a differently scaled variant whose maximum is just
    over 1/4; the formula above is the paper's.)
    """
    k = _k(neutral, sensitive, k)
    if k == 0:
        return 1.0
    in_neutral = set(_dedup(neutral, k))
    weight = sum(k - rank + 1 for rank, v in enumerate(_dedup(sensitive, k), start=1) if v in in_neutral)
    return weight / (k * (k + 1) / 2)


def prag_at_k(neutral: Sequence, sensitive: Sequence, k: int | None = None) -> float:
    """PRAG*@K: pairwise ranking agreement of the sensitive list with the neutral list (FaiRLLM).

        PRAG*@K = sum_{v1, v2 in R^a, v1 != v2} 1[v1 in R] * 1[r_v1 < r_v2] * 1[r^a_v1 < r^a_v2] / (K (K + 1))

    where r_v is v's rank in the neutral list R (r_v = +inf when v is not in R) and r^a_v its rank in the sensitive
    list R^a. It adapts the pairwise ranking accuracy gap (PRAG, Beutel et al., KDD 2019): a pair ordered one way in
    R^a counts when R agrees — v1 must be in R, and v2 either below v1 in R or absent from it. The denominator is the
    paper's K(K + 1), so identical lists score K(K - 1)/2 / (K(K + 1)) = (K - 1) / (2(K + 1)), not 1 (the authors'
    released code divides by K(K - 1)/2 instead; SNSR/SNSV compare values of one metric, so only the scale differs).
    K defaults to the longer list's length; lists are cut to K and repeats dropped.
    """
    k = _k(neutral, sensitive, k)
    if k == 0:
        return 0.0
    neutral_rank = {v: r for r, v in enumerate(_dedup(neutral, k))}
    # R^a in its own order, so "r^a_v1 < r^a_v2" is "v1 comes first": only the upper triangle of pairs counts.
    r = np.array([neutral_rank.get(v, np.inf) for v in _dedup(sensitive, k)])
    agree = np.isfinite(r)[:, None] & (r[:, None] < r[None, :])
    return float(np.triu(agree, k=1).sum() / (k * (k + 1)))


def snsr_snsv(similarity_by_value: dict[str, float]) -> tuple[float, float]:
    """FaiRLLM's unfairness of one sensitive attribute from each value's mean similarity to the neutral lists.

    SNSR (Sensitive-to-Neutral Similarity Range) = max_a Sim_a - min_a Sim_a;
    SNSV (Sensitive-to-Neutral Similarity Variance) = sqrt((1/|A|) sum_a (Sim_a - mean_a Sim_a)^2), the population
    standard deviation (ddof = 0, as `np.std` in the authors' released code), over the attribute's values A.
    Sim_a is a value's similarity (Jaccard@K, SERP*@K or PRAG*@K) averaged over instructions. 0 = fair; higher =
    the attribute's values are treated less alike.
    """
    values = np.array(list(similarity_by_value.values()), dtype=np.float64)
    if values.size == 0:
        raise ValueError("no attribute values")
    return float(values.max() - values.min()), float(values.std(ddof=0))


# Attribute phrases prepended to a prompt. Values are the warehouse's (marts.dim_users): gender "F"/"M", age
# brackets such as "25-34", "under 18", "56+", free-text occupations. Phrasings are chosen to read correctly for
# every value ("aged under 18", "whose occupation is retired"), so no per-value grammar is needed.
COUNTERFACTUAL_TEMPLATES = {
    "gender": "As a {value} viewer, ",
    "age_bracket": "As a viewer aged {value}, ",
    "occupation": "As a viewer whose occupation is {value}, ",
}
_VALUE_WORDS = {"gender": {"F": "female", "M": "male"}}
# Leading words that only start the prompt with a capital because they start the sentence.
_SENTENCE_STARTERS = {"A", "An", "The"}


def counterfactual_prompt(prompt: str, attribute: str, value: str) -> str:
    """`prompt` with the sensitive attribute stated up front, e.g. "As a female viewer, a viewer who recently ...".

    The neutral prompt is `prompt` itself. The first word is lower-cased only when it is a plain sentence starter
    (A/An/The), so a prompt that opens with a title keeps its capital.
    """
    if attribute not in COUNTERFACTUAL_TEMPLATES:
        raise KeyError(f"no counterfactual template for {attribute!r}; known: {sorted(COUNTERFACTUAL_TEMPLATES)}")
    value = str(value).strip()
    if not value:
        raise ValueError("a counterfactual needs a non-empty attribute value")
    phrase = COUNTERFACTUAL_TEMPLATES[attribute].format(value=_VALUE_WORDS.get(attribute, {}).get(value, value))
    first, _, rest = prompt.partition(" ")
    if first in _SENTENCE_STARTERS:
        prompt = f"{first.lower()} {rest}" if rest else first.lower()
    return phrase + prompt
