"""EASE (Steck 2019): a closed-form item-item linear autoencoder, B = I - P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹.

λ is chosen on the valid split (NDCG@10) from a small grid; the test split is never looked at.

One eigendecomposition serves the whole grid: the Gram matrix G = XᵀX is symmetric positive semi-definite, so
G = V diag(w) Vᵀ and (G + λI)⁻¹ = V diag(1/(w + λ)) Vᵀ. Each λ then costs one matrix product (computed in row blocks,
straight into the float32 weights) instead of an inverse, and no k × k float64 inverse or copy of G is ever held.

Only items with train interactions enter the solve: an item with none has an all-zero row and column in XᵀX, so
XᵀX + λI is block-diagonal, its block of P is I/λ and its weights are 0 — the same B as the full inverse, at the
cost of the active items only (e.g. a 1% user sample of Amazon Toys touches a fraction of its 11,924 items).

Budgets that follow the data: `estimate(n_users, n_items, n_interactions)` predicts the fit's time and peak memory
from the split's size (constants measured on the development machine, below). When more items have train
interactions than `max_items`, or than fit in `memory_budget_bytes`, EASE is fitted on the most popular of them only
(by number of train users, ties by item index). Every other item (the less popular ones and those without train
interactions) has no item-item weight and scores a popularity fallback just below zero,
`-TAIL_EPSILON·(1 - count/(cutoff_count + 1))`: they rank among themselves by popularity, below any fitted item that
EASE scores ≥ 0 (the fitted items are more popular), and every item of the catalogue stays rankable. Without the
variant, items without train interactions score 0 as before. The fit report records the variant, why it was used,
and the estimates for the fitted items and for all of them.

Artifacts hold only the fitted block: `weights` (k × k float32), `active` (the k item indices) and `item_bias`
(n_items float32: the tail's fallback scores, 0 elsewhere). Artifacts of code version 1 (a dense n_items × n_items
`weights` only) still load: every item active, no bias.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import scipy.linalg
from safetensors.numpy import load_file, save_file

from lmrec_assets.models.base import FitReport, ModelParams, SplitData, history_matrix
from lmrec_assets.models.costs import (
    BYTES_PER_INTERACTION,
    NUMPY_BASE_BYTES,
    SCORE_BATCH_USERS as SCORE_BATCH,
    SCORE_BYTES_PER_CELL,
    SCORE_SECONDS_PER_CELL,
    Cost,
    DataSize,
    scoring_cells_seconds,
)
from lmrec_assets.models.ranking import evaluate

from threadpoolctl import threadpool_limits

MEMORY_BUDGET_BYTES = 4 * 2**30  # default `memory_budget_bytes`: leaves room for a second job on a 24 GB machine
FLOAT64_MAX_ITEMS = 4096  # up to here the solve runs in float64 (≤ 0.3 GB); above it in float32, half the memory
TAIL_EPSILON = 1e-6  # scale of the popularity fallback of items outside the fitted block
_ROW_BLOCK = 1024  # rows of P computed at a time: a ROW_BLOCK × k temporary instead of a second k × k matrix

# Measured constants (see `estimate`), on the development machine (2 AMD EPYC cores, shared with other
# training jobs, so CPU time was measured rather than wall time): EASE.fit on Amazon Toys restricted to its 1,000 /
# 2,000 / 4,000 / 6,000 most popular items (7.7k-18.2k users, 6 λ), OPENBLAS_NUM_THREADS=1, time.process_time() per
# part, peak RSS growth from /proc/self/status VmHWM. Least-squares fits (within ±10% at 4k and 6k items; smaller
# sizes run faster per k³, so the constants are conservative there):
#   eigendecomposition  2.0e-10 s·k³ (float64, LAPACK evr) | 1.0e-10 s·k³ (float32, evd)
#   weights for one λ   2.6e-11 s·k³ (float64)             | 1.3e-11 s·k³ (float32)
#   valid evaluation    3.4e-8 s per evaluation user × catalogue item, per λ (scoring, masking, np.partition). Rows
#                       with huge ties (tens of thousands of items at one score, e.g. items without interactions)
#                       make np.partition up to ~4× slower.
#   peak memory         19 B·k² (float64) | 13 B·k² (float32) + 16 B per (scoring batch user × catalogue item)
#                       + ~16 MiB (the batch term measured on 1,024 users × 20k-50k synthetic items: 14-16 B).
# So the seconds are single-core CPU seconds: 2 idle cores run the matrix products up to ~2× faster, the
# eigendecomposition less. Amazon Toys whole (11,924 items, 19,412 users) predicts ~350 s and ~2.1 GB in float32,
# where code version 1 (an inverse per λ, float64) took 612 s and 8.3 GB.
EIGH_SECONDS_PER_ITEM3 = {"float64": 2.0e-10, "float32": 1.0e-10}
PRODUCT_SECONDS_PER_ITEM3 = {"float64": 2.6e-11, "float32": 1.3e-11}
SOLVE_BYTES_PER_ITEM2 = {"float64": 19.0, "float32": 13.0}
BASE_BYTES = 16 * 2**20


DEFAULT_L2_GRID = [25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]


class EASEParams(ModelParams):
    l2_grid: list[float] = DEFAULT_L2_GRID
    max_items: int = 20_000  # fit on at most this many (the most popular) items; 0: no limit but the memory budget
    memory_budget_bytes: int = MEMORY_BUDGET_BYTES  # fit on as many items as `estimate` says fit in this


@dataclass(frozen=True)
class EASECost:
    """Predicted fit time (single core, see the constants above) and peak memory of one EASE fit."""

    seconds: float
    peak_bytes: int
    fitted_items: int
    dtype: str


def solve_dtype(fitted_items: int) -> str:
    return "float64" if fitted_items <= FLOAT64_MAX_ITEMS else "float32"


def estimate(
    n_users: int, n_items: int, n_interactions: int, n_l2: int = len(DEFAULT_L2_GRID),
    fitted_items: int | None = None,
) -> EASECost:
    """EASE's predicted fit time and peak memory from the split's size, without touching the data.

    `n_items` is the catalogue (every λ's valid evaluation scores and ranks all of it); `fitted_items` the items that
    enter the solve (default: all of them). Time grows as k³ (eigendecomposition + one product per λ), memory as k².
    """
    k = n_items if fitted_items is None else fitted_items
    dtype = solve_dtype(k)
    seconds = (
        EIGH_SECONDS_PER_ITEM3[dtype] * k**3
        + n_l2 * (PRODUCT_SECONDS_PER_ITEM3[dtype] * k**3 + SCORE_SECONDS_PER_CELL * n_users * n_items)
    )
    peak = (
        SOLVE_BYTES_PER_ITEM2[dtype] * k**2
        + SCORE_BYTES_PER_CELL * min(n_users, SCORE_BATCH) * n_items
        + BYTES_PER_INTERACTION * n_interactions
        + BASE_BYTES
    )
    return EASECost(seconds=float(seconds), peak_bytes=int(peak), fitted_items=int(k), dtype=dtype)


def max_items_within(budget_bytes: int, n_users: int, n_items: int, n_interactions: int) -> int:
    """The most items whose fit `estimate` keeps within `budget_bytes` (0 if not even the fixed costs fit)."""
    best = 0
    # The peak grows with k within each solve dtype (float32 starts lower than float64 ends): bisect each range.
    for lo, hi in ((0, min(n_items, FLOAT64_MAX_ITEMS)), (min(n_items, FLOAT64_MAX_ITEMS + 1), n_items)):
        if estimate(n_users, n_items, n_interactions, fitted_items=lo).peak_bytes > budget_bytes:
            continue
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate(n_users, n_items, n_interactions, fitted_items=mid).peak_bytes <= budget_bytes:
                lo = mid
            else:
                hi = mid - 1
        best = max(best, lo)
    return best


class EASE:
    name = "ease"
    code_version = "2"  # 2: one eigendecomposition for the λ grid; top-popular variant past max_items / memory budget
    kind = "numpy"
    upstream = ()
    Params = EASEParams

    def __init__(self, params: EASEParams | None = None) -> None:
        self.params = params or self.Params()
        self.weights: np.ndarray | None = None  # (k, k) float32, over the items in `active`
        self.active: np.ndarray | None = None  # (k,) int64 item indices, ascending
        self.item_bias: np.ndarray | None = None  # (n_items,) float32: fallback scores of items outside `active`
        self.l2: float | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    def fit(self, data: SplitData) -> FitReport:
        x = history_matrix(data.train_sequences, np.arange(data.n_users), data.n_items)
        counts = np.diff(x.tocsc().indptr)  # train users per item (histories are binary)
        present = np.flatnonzero(counts > 0)
        plan = self._plan(data.n_users, data.n_items, x.nnz, present, counts)
        self.active, self.item_bias = plan["active"], plan["item_bias"]

        started = time.process_time()
        solver = _EigenSolver.from_interactions(x[:, self.active], plan["dtype"])
        eigh_seconds = time.process_time() - started
        del x
        k = len(self.active)
        current, best = np.empty((k, k), np.float32), np.empty((k, k), np.float32)
        curve, best_ndcg, best_l2 = [], -1.0, None
        for l2 in self.params.l2_grid:
            self.weights, self.l2 = solver.weights(l2, out=current), l2
            ndcg = float(evaluate(self, data, "valid", ks=(10,)).loc[0, "ndcg"])
            curve.append({"l2": l2, "valid_ndcg_at_10": ndcg})
            if ndcg > best_ndcg:
                best_ndcg, best_l2 = ndcg, l2
                current, best = best, current  # keep the best weights without a copy; the next λ overwrites the other
        del solver, current
        self.weights, self.l2 = best, best_l2
        params = {"l2": self.l2, **{key: value for key, value in plan.items() if key not in ("active", "item_bias")},
                  "gram_and_eigh_cpu_seconds": round(eigh_seconds, 2)}
        return FitReport(params=params, valid_ndcg_at_10=best_ndcg, curve=curve, trainable_parameters=k * k)

    def _plan(self, n_users: int, n_items: int, n_interactions: int, present: np.ndarray, counts: np.ndarray) -> dict:
        """Which items enter the solve (all with train interactions, or the most popular k of them) and why."""
        n_l2 = len(self.params.l2_grid)
        full = estimate(n_users, n_items, n_interactions, n_l2, fitted_items=len(present))
        k, reasons = len(present), []
        if self.params.max_items > 0 and k > self.params.max_items:
            k = self.params.max_items
            reasons.append(f"{len(present)} items with train interactions > max_items {self.params.max_items}")
        if full.peak_bytes > self.params.memory_budget_bytes:
            affordable = max_items_within(self.params.memory_budget_bytes, n_users, n_items, n_interactions)
            if affordable < k:
                k = max(affordable, 1) if len(present) else 0
                reasons.append(f"estimated peak {full.peak_bytes / 2**30:.1f} GiB for {len(present)} items > memory "
                               f"budget {self.params.memory_budget_bytes / 2**30:.1f} GiB (fits {affordable} items)")
        item_bias = np.zeros(n_items, dtype=np.float32)
        if k < len(present):
            order = present[np.argsort(-counts[present], kind="stable")]  # most popular first, ties by item index
            active = np.sort(order[:k])
            tail = np.ones(n_items, dtype=bool)
            tail[active] = False
            cutoff = counts[order[k - 1]] if k else 0
            item_bias[tail] = -TAIL_EPSILON * (1.0 - counts[tail] / (cutoff + 1.0))
        else:
            active = present
        fitted = estimate(n_users, n_items, n_interactions, n_l2, fitted_items=k)
        return {
            "active": active.astype(np.int64),
            "item_bias": item_bias,
            "variant": "top_popular" if reasons else "full",
            "variant_reason": "; ".join(reasons) or "all items with train interactions fit the budget",
            "fitted_items": int(k),
            "items_with_interactions": int(len(present)),
            "dtype": fitted.dtype,
            "estimated_seconds": round(fitted.seconds, 1),
            "estimated_peak_bytes": fitted.peak_bytes,
            "estimated_full_seconds": round(full.seconds, 1),
            "estimated_full_peak_bytes": full.peak_bytes,
        }

    @classmethod
    def cost(cls, params: EASEParams, size: DataSize) -> Cost:
        """`estimate` for the variant `_plan` will choose. Items with train interactions are not counted before the
        fit, so at most min(catalogue, interactions) of them is assumed."""
        k = min(size.n_items, size.n_interactions)
        if params.max_items > 0:
            k = min(k, params.max_items)
        affordable = max_items_within(params.memory_budget_bytes, size.n_users, size.n_items, size.n_interactions)
        k = min(k, max(affordable, 1))
        fitted = estimate(size.n_users, size.n_items, size.n_interactions, len(params.l2_grid), fitted_items=k)
        return Cost(seconds=fitted.seconds, scoring_seconds=scoring_cells_seconds(size),
                    peak_bytes=NUMPY_BASE_BYTES + fitted.peak_bytes,
                    basis=f"EASE's estimate for {k} fitted items ({fitted.dtype}, {len(params.l2_grid)} λ)")

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        x = history_matrix(histories, users, self.n_items)
        scores = np.broadcast_to(self.item_bias, (len(users), self.n_items)).copy()
        if len(self.active) == self.n_items:  # every item fitted (and every artifact of code version 1)
            scores += x @ self.weights
        elif len(self.active):
            scores[:, self.active] += x[:, self.active] @ self.weights
        return scores

    def save(self, path: Path) -> None:
        save_file({"weights": self.weights, "active": self.active, "item_bias": self.item_bias},
                  str(path / "model.safetensors"))
        (path / "params.json").write_text(self.params.model_dump_json())
        (path / "fitted.json").write_text(json.dumps({"l2": self.l2, "n_items": self.n_items}))

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        tensors = load_file(str(path / "model.safetensors"))
        model.weights = tensors["weights"]
        n = model.weights.shape[0]  # code version 1: a dense n_items × n_items matrix, every item "active"
        model.active = tensors.get("active", np.arange(n, dtype=np.int64))
        model.item_bias = tensors.get("item_bias", np.zeros(n, dtype=np.float32))
        model.l2 = json.loads((path / "fitted.json").read_text())["l2"]
        return model


class _EigenSolver:
    """EASE weights for any λ from one eigendecomposition of the Gram matrix: (G + λI)⁻¹ = V diag(1/(w+λ)) Vᵀ."""

    def __init__(self, gram: np.ndarray, dtype: str) -> None:
        """`gram` is consumed: LAPACK overwrites it when it already has `dtype` (pass a copy to keep it)."""
        gram = gram.T if gram.flags.c_contiguous else gram  # symmetric: its transpose is itself, Fortran-ordered
        gram = np.asarray(gram, dtype=dtype, order="F")  # a copy only if the caller's matrix is of another dtype
        if len(gram):
            # The Gram matrix is overwritten. float64: relatively robust representations (O(k) workspace), so G and V
            # are the only k × k matrices alive (16 B/k²). float32: divide and conquer, ~1.5× faster here, whose
            # 2k² workspace peaks at the 12 B/k² the λ loop needs anyway (V, the weights tried and the best weights).
            # One BLAS thread: the tridiagonal reduction is a long series of small synchronised BLAS-2 calls, which on
            # a machine shared with other jobs ran far slower with 2 threads than with 1 (336 items: 1.9 s against
            # 0.008 s; 3,000 Amazon Toys items: 15.6 s against 5.6 s), and the constants above are single-thread.
            driver = "evr" if gram.dtype == np.float64 else "evd"
            with threadpool_limits(1, user_api="blas"):
                w, self.v = scipy.linalg.eigh(gram, overwrite_a=True, check_finite=False, driver=driver)
        else:
            w, self.v = np.zeros(0, dtype), np.zeros((0, 0), dtype)
        self.w = np.clip(w, 0.0, None)  # G is PSD: rounding's tiny negative eigenvalues are 0

    @classmethod
    def from_interactions(cls, x, dtype: str) -> _EigenSolver:
        """From the binary users × items matrix; G = XᵀX is built dense one block of columns at a time, so the
        sparse product never holds more than a k × block slice (a dense co-occurrence Gram would double the peak)."""
        x = x.tocsc()
        k = x.shape[1]
        gram = np.empty((k, k), dtype=dtype, order="F")
        xt = x.T.tocsr()
        for start in range(0, k, _ROW_BLOCK):
            # float32 counts are exact below 2²⁴ users per item pair
            gram[:, start : start + _ROW_BLOCK] = (xt @ x[:, start : start + _ROW_BLOCK]).toarray()
        return cls(gram, dtype)

    def weights(self, l2: float, out: np.ndarray | None = None) -> np.ndarray:
        """B = I - P·diag(1/diag(P)) as float32, P = (G + λI)⁻¹, written into `out` one block of rows at a time.

        P is symmetric, so only its upper block triangle is computed (half the products of V diag(1/(w+λ)) Vᵀ):
        a block P[i, j] gives both B[i, j] = -P[i, j] / P[j, j] and B[j, i] = -P[i, j] / P[i, i].
        """
        k = len(self.w)
        out = np.empty((k, k), np.float32) if out is None else out
        inverse = (1.0 / (self.w + l2)).astype(self.v.dtype)
        diag = np.empty(k, self.v.dtype)  # diag(P)_j = Σ_m V_jm² / (w_m + λ)
        for start in range(0, k, _ROW_BLOCK):
            rows = self.v[start : start + _ROW_BLOCK]
            diag[start : start + _ROW_BLOCK] = (rows * rows) @ inverse
        for start in range(0, k, _ROW_BLOCK):
            stop = min(start + _ROW_BLOCK, k)
            block = (self.v[start:stop] * inverse) @ self.v[start:].T  # P[start:stop, start:]
            np.divide(block, -diag[start:], out=out[start:stop, start:], casting="same_kind")
            np.divide(block[:, stop - start :].T, -diag[start:stop], out=out[stop:, start:stop], casting="same_kind")
        np.fill_diagonal(out, 0.0)
        return out


def _solve(gram: np.ndarray, l2: float) -> np.ndarray:
    """Dense n × n EASE weights for one λ (items without interactions get zero rows and columns)."""
    active = np.flatnonzero(np.diag(gram) > 0)
    block = _EigenSolver(gram[np.ix_(active, active)], solve_dtype(len(active))).weights(l2)
    weights = np.zeros(gram.shape, dtype=np.float32)
    weights[np.ix_(active, active)] = block
    return weights
