"""Which users a model may train on, and which users it is evaluated on.

Data efficiency: a model fits on the train sequences of a fraction of the training users; the valid and test users
(and the histories their scores are conditioned on) stay exactly those of the full split, so every fraction is
measured on the same users. Subsets are nested (the first k of one seeded permutation), so 5% ⊂ 25% ⊂ 100%.

Evaluation sample: on a large domain (Toys: 19,412 users) valid/test can be restricted to a seeded sample of users;
every item is still ranked (full ranking over the whole catalogue), only fewer users are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from lmrec_assets.models.base import SplitData


@dataclass(frozen=True)
class TrainingSubset(SplitData):
    """A split whose `train_sequences` hold only the sampled users' items (the others are empty): what a model fits
    on. `histories()` still reads `full`, the whole split, because a user's history is the model's input at
    scoring time, not training data: valid/test users are scored exactly as with the full split."""

    full: SplitData | None = None

    def histories(self, upto: Literal["train", "valid", "test"]) -> list[np.ndarray]:
        return self.full.histories(upto) if self.full is not None else super().histories(upto)


def training_users(data: SplitData, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of round(fraction × n) users drawn from those with train items (at least one); nested in
    `fraction` for a fixed seed."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    candidates = np.flatnonzero([len(seq) > 0 for seq in data.train_sequences])
    order = np.random.default_rng(seed).permutation(candidates)
    return np.sort(order[: max(1, round(fraction * len(candidates)))])


def fraction_split(data: SplitData, fraction: float, seed: int) -> SplitData:
    """The split a model trains on with `fraction` of the training users (`data` itself at 1.0)."""
    if fraction == 1.0:
        return data
    kept = np.zeros(data.n_users, dtype=bool)
    kept[training_users(data, fraction, seed)] = True
    empty = np.array([], dtype=np.int64)
    sequences = [seq if kept[u] else empty for u, seq in enumerate(data.train_sequences)]
    full = data.full if isinstance(data, TrainingSubset) else data
    fields = {name: getattr(data, name) for name in SplitData.__dataclass_fields__}
    return TrainingSubset(
        **fields | {"train_sequences": sequences, "fingerprint": f"{data.fingerprint}|users={fraction}@{seed}"},
        full=full,
    )


def evaluation_sample(data: SplitData, n_users: int, seed: int) -> SplitData:
    """The split with valid and test targets kept for a seeded sample of `n_users` evaluation users (0: all users).

    Users outside the sample keep their train sequences (they still train models); only their held-out items are
    hidden. A test user is always a valid user too (leave-one-out), so one sample serves both splits.
    """
    users = data.evaluation_users("test")
    if n_users <= 0 or n_users >= len(users):
        return data
    chosen = np.random.default_rng(seed).choice(users, size=n_users, replace=False)
    keep = np.zeros(data.n_users, dtype=bool)
    keep[chosen] = True
    return replace(
        data,
        valid_items=np.where(keep, data.valid_items, -1),
        test_items=np.where(keep, data.test_items, -1),
        fingerprint=f"{data.fingerprint}|eval={n_users}@{seed}",
    )
