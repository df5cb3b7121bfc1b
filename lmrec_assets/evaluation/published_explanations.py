"""Explanations for every published recommendation, and their quality (PEPLER's USR, FCR, DIV and FMR).

Built at publish time from the warehouse: each user's whole history in time order (marts.fct_interactions), item
titles and categories (marts.dim_items) and item text embeddings (`encode_texts(item_text)`, a cache read once the
item_embeddings asset has run). `explain_batch` only names history titles and shared categories, so every
template explanation is grounded in warehouse rows and the same inputs always give the same sentence.

The generative models (`GENERATIVE_MODELS`) write their own explanations of their top `explain_top_n` ranks per user
(`explanation_source` 'lm_generated'): the published version of the model, its trained explanation prompt (the
user's last titles and the recommended title), greedy decoding in batches. Free text can invent things, so each
sentence is checked before it is published (`check_generated`): one that names a category the item does not have
(PEPLER's feature words, whole phrases over the catalogue's category vocabulary, as `mentioned_features` finds them)
is a hallucination, one that names none of the item's categories is ungrounded (nothing in it can be checked), and
one that is empty, unfinished or looping is degenerate; in each case the row keeps its template (`explanation_source`
'template') and the rejection is counted in explanation_quality. Only the category vocabulary can be checked: a
generated description may still be wrong about plot details.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from lmrec_assets.evaluation.explanations import (
    explain_batch,
    feature_diversity,
    feature_pattern,
    mentioned_features,
    unique_sentence_ratio,
)
from lmrec_assets.evaluation.generation_assets import GENERATIVE_MODELS
from lmrec_assets.models.generative_p5 import GenerativeP5
from lmrec_assets.models.registry import load_version
from lmrec_assets.models.text import encode_texts

TEMPLATE, LM_GENERATED = "template", "lm_generated"  # explanation_source
# check_generated verdicts
PASSED, HALLUCINATION, UNGROUNDED, DEGENERATE = "passed", "hallucination", "ungrounded", "degenerate"
EXPLAIN_TOP_N = 3  # LM explanations per user (ranks 1..n): decoding cost is linear in users × n
MIN_DISTINCT_WORDS = 0.5  # distinct ÷ all words below this: a looping sentence ("drama drama drama ...")


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


def recommendation_explanations(con: duckdb.DuckDBPyConnection, catalogue: Catalogue, explain_top_n: int) -> pd.DataFrame:
    """(model, model_version, user_id, rank, item_id, explanation, explanation_source, lm_verdict) for every row of
    recs.latest_recommendations. `lm_verdict`: `check_generated`'s verdict on the LM's sentence for the row, None
    where the LM was not asked (a model that writes no text, or a rank beyond `explain_top_n`).

    The history is everything the user did (train, valid and test), the same history the lists were made from.
    """
    histories = user_histories(con, catalogue, ("train", "valid", "test"))
    recs = con.execute(
        "select model, model_version, user_id, rank, item_id from recs.latest_recommendations order by model, user_id, rank"
    ).df()
    frames = []
    empty = np.array([], dtype=np.int64)
    for (model, version), part in recs.groupby(["model", "model_version"], sort=False):
        users = part["user_id"].drop_duplicates().to_numpy()
        theirs = [histories.get(u, empty) for u in users]
        # The recommendations check guarantees K contiguous ranks per user, so the rows form a users × K table.
        items = catalogue.index.get_indexer(part["item_id"]).reshape(len(users), -1)
        sentences = explain_batch(theirs, items, catalogue.titles, catalogue.categories, catalogue.embeddings)
        sources = np.full(items.shape, TEMPLATE, dtype=object)
        verdicts = np.full(items.shape, None, dtype=object)
        top_n = min(explain_top_n, items.shape[1])
        if model in GENERATIVE_MODELS and top_n > 0:
            generated, checked = generated_explanations(load_version(con, model, version),
                                                        [h for h in theirs for _ in range(top_n)],
                                                        items[:, :top_n].ravel(), catalogue)
            verdicts[:, :top_n] = checked.reshape(len(users), top_n)
            accepted = verdicts == PASSED
            sentences[accepted] = generated.reshape(len(users), top_n)[accepted[:, :top_n]]
            sources[accepted] = LM_GENERATED
        frames.append(part.assign(
            explanation=sentences.ravel().astype(str), explanation_source=sources.ravel(), lm_verdict=verdicts.ravel()))
    columns = ["model", "model_version", "user_id", "rank", "item_id", "explanation", "explanation_source", "lm_verdict"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def generated_explanations(
    model: GenerativeP5, histories: list[np.ndarray], items: np.ndarray, catalogue: Catalogue
) -> tuple[np.ndarray, np.ndarray]:
    """The model's explanation of each (history, item) pair, from its trained explanation prompt by greedy decoding
    (batches of `eval_batch_size`), and `check_generated`'s verdict on each. Item indices are the catalogue's, which
    are the model's: both are dim_items in item_id order."""
    if model.item_titles != catalogue.titles:
        raise ValueError(f"{model.name} was trained on another catalogue than dim_items: retrain it before publishing")
    outputs = model.generate([model.explanation_prompt(h, int(i)) for h, i in zip(histories, items)],
                             model.params.max_explanation_tokens)
    # The model writes the tokenizer's normal form ("sci - fi", lower case): spell categories the catalogue's way,
    # so the check and the published text use the vocabulary of `Catalogue.categories`.
    spellings = {model.normalized(c, model.params.max_explanation_tokens): c.lower() for c in catalogue.vocabulary}
    sentences = [readable(model.text(tokens), spellings) for tokens in outputs]
    verdicts = check_generated(sentences, [model.ended(tokens) for tokens in outputs], items, catalogue)
    return np.array(sentences, dtype=object), np.array(verdicts, dtype=object)


def readable(text: str, spellings: dict[str, str]) -> str:
    """A generated text as published: categories spelled as in the catalogue, no space before punctuation, each
    sentence starting with a capital (the MiniLM tokenizer is uncased)."""
    for written, spelled in sorted(spellings.items(), key=lambda kv: -len(kv[0])):  # longest first: "film - noir"
        if written != spelled:
            text = feature_pattern(written).sub(lambda _: spelled, text)
    text = re.sub(r"\s+([.,:;!?])", r"\1", text)
    return re.sub(r"(^|[.!?]\s+)(\w)", lambda m: m.group(1) + m.group(2).upper(), text)


def check_generated(sentences: list[str], finished: list[bool], items: np.ndarray, catalogue: Catalogue) -> list[str]:
    """Per generated sentence (`finished`: it ended at eos), the first that applies: DEGENERATE when it is empty, was
    cut at the token limit or loops; HALLUCINATION when it names a catalogue category that item `items[j]` does not
    have; UNGROUNDED when it names none of the item's categories (nothing in it is checkable, e.g. the one sentence a
    briefly trained model writes for every item); else PASSED: it names only, and at least one of, the item's own."""
    found = mentioned_features(sentences, catalogue.vocabulary)
    verdicts = []
    for sentence, ended, features, hallucinated in zip(sentences, finished, found,
                                                        names_foreign_category(found, items, catalogue)):
        words = sentence.lower().split()
        if not words or not ended or len(set(words)) < MIN_DISTINCT_WORDS * len(words):
            verdicts.append(DEGENERATE)
        elif hallucinated:
            verdicts.append(HALLUCINATION)
        else:
            verdicts.append(PASSED if features else UNGROUNDED)
    return verdicts


def names_foreign_category(features: list[set[str]], items: np.ndarray, catalogue: Catalogue) -> list[bool]:
    """Per sentence, from its `mentioned_features`: does it name a category that its item `items[j]` lacks?"""
    return [bool(found - set(catalogue.categories[item])) for found, item in zip(features, items)]


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
    DIV (mean number of categories two explanations share; lower = more diverse) and the test-split FMR of the
    published explanations; and what the LM wrote: sentences generated, published (`explanation_source`
    'lm_generated'), rejected as hallucinations, as ungrounded or as degenerate, and the hallucination rate of the generated
    sentences and of the published LM sentences (re-checked here: 0 unless the check itself is broken)."""
    vocabulary = catalogue.vocabulary
    rows = []
    for (model, version), part in explanations.groupby(["model", "model_version"]):
        sentences = part["explanation"].tolist()
        features = mentioned_features(sentences, vocabulary)
        verdicts = part["lm_verdict"]
        generated, hallucinations = int(verdicts.notna().sum()), int((verdicts == HALLUCINATION).sum())
        from_lm = (part["explanation_source"] == LM_GENERATED).to_numpy()
        foreign = names_foreign_category([f for f, lm in zip(features, from_lm) if lm],
                                         catalogue.index.get_indexer(part["item_id"][from_lm]), catalogue)
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
            "n_lm_generated": generated,
            "n_lm_published": int(from_lm.sum()),
            "n_hallucinations_rejected": hallucinations,
            "n_ungrounded_rejected": int((verdicts == UNGROUNDED).sum()),
            "n_degenerate_rejected": int((verdicts == DEGENERATE).sum()),
            "hallucination_rate_generated": hallucinations / generated if generated else float("nan"),
            "hallucination_rate_published": float(np.mean(foreign)) if foreign else float("nan"),
        })
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


QUALITY_COLUMNS = ["model", "model_version", "n_explanations", "usr", "fcr", "div", "fmr", "fmr_n_users",
                   "n_lm_generated", "n_lm_published", "n_hallucinations_rejected", "n_ungrounded_rejected",
                   "n_degenerate_rejected",
                   "hallucination_rate_generated", "hallucination_rate_published"]
