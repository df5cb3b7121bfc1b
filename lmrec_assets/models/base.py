"""The one model interface, and the split data every model reads (dense indices are internal to model code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp
from dagster import Config

if TYPE_CHECKING:  # costs.py reads SplitData from here
    from lmrec_assets.models.costs import Cost, DataSize

Split = Literal["valid", "test"]


@dataclass(frozen=True)
class SplitData:
    """The leave-one-out split with dense indices. Users and items keep their source ids in `user_ids`/`item_ids`.

    `train_sequences[u]` are user u's train items in time order; `valid_items[u]`/`test_items[u]` are the held-out
    item index or -1 for users with < 3 events (train only).
    """

    user_ids: np.ndarray  # (n_users,) str
    item_ids: np.ndarray  # (n_items,) str, the whole catalogue (dim_items)
    item_text: list[str]  # dim_items.item_text: the document a language model reads for each item
    item_titles: list[str]
    train_sequences: list[np.ndarray]
    valid_items: np.ndarray  # (n_users,) int64
    test_items: np.ndarray  # (n_users,) int64
    fingerprint: str = ""  # identifies the training data (goes into model versions and lineage)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def histories(self, upto: Literal["train", "valid", "test"]) -> list[np.ndarray]:
        """What a model may condition on: train for valid-time scoring, train+valid for test time, all for serving."""
        if upto == "train":
            return self.train_sequences
        extra = [self.valid_items] if upto == "valid" else [self.valid_items, self.test_items]
        return [
            np.concatenate([seq, [e[u] for e in extra if e[u] >= 0]]).astype(np.int64)
            for u, seq in enumerate(self.train_sequences)
        ]

    def evaluation_users(self, split: Split) -> np.ndarray:
        targets = self.valid_items if split == "valid" else self.test_items
        return np.flatnonzero(targets >= 0)

    def targets(self, split: Split) -> np.ndarray:
        return self.valid_items if split == "valid" else self.test_items

    def conditioning(self, split: Split) -> Literal["train", "valid"]:
        return "train" if split == "valid" else "valid"


def history_matrix(histories: list[np.ndarray], users: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary users × items matrix of the given users' histories (repeats count once)."""
    rows = np.repeat(np.arange(len(users)), [len(histories[u]) for u in users])
    cols = np.concatenate([histories[u] for u in users]) if len(users) else np.array([], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(users), n_items))
    matrix.data[:] = 1.0
    return matrix


class ModelParams(Config):
    """Seed and training budget shared by every model; a model subclasses it to add its own hyperparameters.

    These are Dagster run config (editable in the launchpad) and they go into the model version. The defaults are
    demo-sized so `make demo` stays within minutes on 2 cores.
    """

    seed: int = 7
    max_epochs: int = 20
    max_steps: int = 0  # 0: no step limit
    max_minutes: float = 5.0
    patience: int = 3  # epochs without a valid NDCG@10 gain before early stopping


@dataclass
class FitReport:
    """What training did, for asset metadata and model cards."""

    params: dict = field(default_factory=dict)
    valid_ndcg_at_10: float | None = None
    curve: list[dict] = field(default_factory=list)  # one row per epoch / candidate: e.g. {"step": .., "loss": ..}
    trainable_parameters: int = 0


class Recommender(Protocol):
    """Fit on the train split, score users × all items (higher is better), save in a standard format.

    `Params` is the model's config class; the model is built as `Model(Params(...))`. `upstream` names assets the
    model reads besides the split (e.g. "item_embeddings"); `kind` is shown in the UI (numpy, pytorch, ...).
    """

    name: ClassVar[str]
    code_version: ClassVar[str]
    kind: ClassVar[str]
    upstream: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[ModelParams]]

    def __init__(self, params: ModelParams) -> None: ...

    def fit(self, data: SplitData) -> FitReport: ...

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...

    @classmethod
    def cost(cls, params: ModelParams, size: DataSize) -> Cost:
        """Predicted time and peak memory on a split of this size, before training (`models/costs.py`)."""
        ...


@runtime_checkable
class PromptRecommender(Protocol):
    """A recommender that reads each user as a text prompt (zero-shot, LoRA / prompt-tuned LMs, P5, the LM re-ranker).

    `user_prompts` gives the prompt `score` reads for each user; `score_prompts` scores rows from any given prompts
    (row j: user `users[j]` read through `prompts[j]`; a user may occur on several rows, and `histories` still supply
    what a prompt does not carry: seen items, retriever candidates, recent items). For every such model
    `score(users, h)` is `score_prompts(users, h, user_prompts(users, h))`, so a probe that re-states a prompt (the
    FaiRLLM counterfactuals of `fairness_assets`) changes only the text the model reads.
    """

    def user_prompts(self, users: np.ndarray, histories: list[np.ndarray]) -> list[str]: ...

    def score_prompts(self, users: np.ndarray, histories: list[np.ndarray], prompts: list[str]) -> np.ndarray: ...
