"""EASE (Steck 2019): a closed-form item-item linear autoencoder, B = I - P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹.

λ is chosen on the valid split (NDCG@10) from a small grid; the test split is never looked at.

Only items with train interactions enter the inverse: an item with none has an all-zero row and column in XᵀX, so
XᵀX + λI is block-diagonal, its block of P is I/λ and its weights are 0 — the same B as the full inverse, at the
cost of the active items only (e.g. a 1% user sample of Amazon Toys touches a fraction of its 11,924 items).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
from safetensors.numpy import load_file, save_file

from lmrec_assets.models.base import FitReport, ModelParams, SplitData, history_matrix


class EASEParams(ModelParams):
    l2_grid: list[float] = [25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]


class EASE:
    name = "ease"
    code_version = "1"
    kind = "numpy"
    upstream = ()
    Params = EASEParams

    def __init__(self, params: EASEParams | None = None) -> None:
        self.params = params or self.Params()
        self.weights: np.ndarray | None = None  # (n_items, n_items) float32
        self.l2: float | None = None

    def fit(self, data: SplitData) -> FitReport:
        from lmrec_assets.evaluation.ranking import evaluate  # evaluation imports models.base; avoid a cycle

        x = history_matrix(data.train_sequences, np.arange(data.n_users), data.n_items)
        gram = (x.T @ x).toarray().astype(np.float64)
        curve, best = [], (-1.0, None, None)
        for l2 in self.params.l2_grid:
            self.weights, self.l2 = _solve(gram, l2), l2
            ndcg = float(evaluate(self, data, "valid", ks=(10,)).loc[0, "ndcg"])
            curve.append({"l2": l2, "valid_ndcg_at_10": ndcg})
            if ndcg > best[0]:
                best = (ndcg, l2, self.weights)
        ndcg, self.l2, self.weights = best
        return FitReport(params={"l2": self.l2}, valid_ndcg_at_10=ndcg, curve=curve, trainable_parameters=data.n_items**2)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.asarray(history_matrix(histories, users, self.weights.shape[0]) @ self.weights)

    def save(self, path: Path) -> None:
        save_file({"weights": self.weights}, str(path / "model.safetensors"))
        (path / "params.json").write_text(self.params.model_dump_json())
        (path / "fitted.json").write_text(json.dumps({"l2": self.l2}))

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        model.weights = load_file(str(path / "model.safetensors"))["weights"]
        model.l2 = json.loads((path / "fitted.json").read_text())["l2"]
        return model


def _solve(gram: np.ndarray, l2: float) -> np.ndarray:
    active = np.flatnonzero(np.diag(gram) > 0)
    block = gram[np.ix_(active, active)]
    precision = np.linalg.inv(block + l2 * np.eye(len(block)))
    block_weights = -precision / np.diag(precision)
    np.fill_diagonal(block_weights, 0.0)
    weights = np.zeros(gram.shape, dtype=np.float32)
    weights[np.ix_(active, active)] = block_weights
    return weights
