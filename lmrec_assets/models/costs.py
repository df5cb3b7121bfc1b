"""Budgets that follow the data: what a model will cost on a split, predicted from its size before any training.

Each model class has `cost(params, size) -> Cost`: the wall seconds of its asset (the training clock, or the
closed-form work, plus the valid-split scoring `fit` does) and of one scoring pass over the evaluation users (what
`evaluation_metrics` and `recommendations` repeat), and the peak memory of the step process. The model asset
compares it with the run's limits (`fits`) before training: a model that cannot fit is skipped with the reason in
the UI (asset metadata, run log, `models.model_skips`) and its older versions stop being served, instead of an
out-of-memory kill or a stall. EASE instead switches to its top-popular variant (`ease.py`), so it only skips when
even that cannot fit.

The rule (`fits`):
- time: `seconds + SCORING_PASSES × scoring_seconds` ≤ the run budget (`LMREC_TRAINING_BUDGET_MINUTES`; 45 min under
  `nightly`, none under `demo`): no single model may take longer than the whole run's training budget;
- memory: `peak_bytes` ≤ the memory budget (`LMREC_MEMORY_BUDGET_GB`; default 75% of this machine's RAM).

The per-unit constants below were measured on the development machine (2 AMD EPYC cores, 24 GB): ML-100K nightly
refresh (benchmarks/results/nightly_ml100k.md: 943 users, 1,682 items), the encoding benchmark (encoding.md) and
EASE's own fits (ease.py). They are estimates, good to a factor of about two; each model asset records the estimate
beside what it measured (`estimated_fit_seconds` vs `fit_seconds`, `estimated_peak_mib` vs `peak_rss_mib`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lmrec_assets.models.base import SplitData

GIB = 2**30
SCORING_PASSES = 3  # evaluation_metrics on valid and test, then recommendations, each score every evaluation user
DEFAULT_MEMORY_SHARE = 0.75  # of physical RAM when LMREC_MEMORY_BUDGET_GB is unset

# Time, 2 cores.
SCORE_SECONDS_PER_CELL = 3.4e-8  # scoring + seen-item masking + top-k, per evaluation user × catalogue item
# (measured with EASE's valid evaluation, see ease.py)
PROMPT_SECONDS = 1 / 55  # one user prompt through MiniLM: 22k Amazon Toys test prompts in 399 s (ML-100K's
# shorter titles: 81/s, zero_shot's fit of 3 × 943 prompts in 34.8 s; the slower rate is kept)
ITEM_TEXT_SECONDS = 1 / 124  # one item text through MiniLM when item_embeddings' cache is cold (encoding.md, fp32)
BEAM_SECONDS_PER_USER = 0.154  # generative_p5 beam 20, 6 + 6 layers: 3,100 counterfactual beam searches in 478 s
SEQUENCE_SECONDS_PER_USER = 2e-4  # SASRec's transformer over one user's last max_len items (scoring, batched)

# Memory.
NUMPY_BASE_BYTES = int(0.4 * GIB)  # a Dagster step process with numpy/scipy/duckdb loaded
TORCH_BASE_BYTES = int(1.0 * GIB)  # ... with torch and a small net
LM_BASE_BYTES = int(1.6 * GIB)  # ... with transformers, peft and MiniLM (weights, optimizer state, activations)
SCORE_BYTES_PER_CELL = 16.0  # float32 scores + mask + top-k scratch per (scoring batch user × catalogue item)
SCORE_BATCH_USERS = 1024  # users per scoring batch (ranking.evaluate)
BYTES_PER_INTERACTION = 64.0  # split sequences, histories and the sparse matrices built from them (CSR, CSC)
ITEM_VECTOR_BYTES = 384 * 4  # one MiniLM item-text vector (float32)


@dataclass(frozen=True)
class DataSize:
    """The split's size, all a cost estimate reads."""

    n_users: int
    n_items: int
    n_interactions: int  # train events
    n_eval_users: int  # users with a held-out item (valid split)

    @classmethod
    def of(cls, data: SplitData) -> DataSize:
        return cls(
            n_users=data.n_users, n_items=data.n_items,
            n_interactions=int(sum(len(s) for s in data.train_sequences)),
            n_eval_users=int(len(data.evaluation_users("valid"))),
        )


@dataclass(frozen=True)
class Cost:
    """A model's predicted cost on a split (see the module docstring)."""

    seconds: float  # the model asset: training clock or closed-form work, plus the valid scoring fit does
    scoring_seconds: float  # one scoring pass over the evaluation users
    peak_bytes: int
    basis: str  # the formula in words, shown in the UI

    @property
    def run_seconds(self) -> float:
        """The asset plus the scoring passes evaluation and recommendations make."""
        return self.seconds + SCORING_PASSES * self.scoring_seconds

    def metadata(self) -> dict:
        return {"estimated_fit_seconds": round(self.seconds, 1), "estimated_scoring_seconds": round(self.scoring_seconds, 1),
                "estimated_peak_mib": round(self.peak_bytes / 2**20), "estimate_basis": self.basis}


def scoring_cells_seconds(size: DataSize) -> float:
    """Score, mask and rank the whole catalogue for every evaluation user."""
    return SCORE_SECONDS_PER_CELL * size.n_eval_users * size.n_items


def prompt_scoring_seconds(size: DataSize) -> float:
    """Encode every evaluation user's prompt with the LM, then score and rank the catalogue."""
    return PROMPT_SECONDS * size.n_eval_users + scoring_cells_seconds(size)


def lm_bytes(size: DataSize, item_vector_copies: int = 1) -> float:
    """A step process holding the LM, the item-text vectors, one scoring batch and the split."""
    return (LM_BASE_BYTES + item_vector_copies * ITEM_VECTOR_BYTES * size.n_items + scoring_bytes(size)
            + data_bytes(size))


def scoring_bytes(size: DataSize) -> float:
    return SCORE_BYTES_PER_CELL * min(size.n_eval_users, SCORE_BATCH_USERS) * size.n_items


def data_bytes(size: DataSize) -> float:
    return BYTES_PER_INTERACTION * size.n_interactions


def memory_budget_bytes(configured_gb: float | None = None) -> int:
    """The memory a model may use: `configured_gb` (LMREC_MEMORY_BUDGET_GB) or 75% of physical RAM."""
    if configured_gb:
        return int(configured_gb * GIB)
    return int(DEFAULT_MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def fits(cost: Cost, budget_minutes: float | None, memory_bytes: int) -> str | None:
    """Why the model cannot run within the limits (None: it fits)."""
    reasons = []
    if budget_minutes is not None and cost.run_seconds > budget_minutes * 60:
        reasons.append(
            f"estimated {cost.run_seconds / 60:.1f} min (fit {cost.seconds / 60:.1f} + {SCORING_PASSES} scoring passes "
            f"× {cost.scoring_seconds / 60:.1f}) > run budget {budget_minutes:g} min (LMREC_TRAINING_BUDGET_MINUTES)"
        )
    if cost.peak_bytes > memory_bytes:
        reasons.append(f"estimated peak memory {cost.peak_bytes / GIB:.1f} GiB > memory budget "
                       f"{memory_bytes / GIB:.1f} GiB (LMREC_MEMORY_BUDGET_GB)")
    return "; ".join(reasons) or None
