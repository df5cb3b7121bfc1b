"""Most-popular items on the train split: the floor every other model must clear."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
from safetensors.numpy import load_file, save_file

from lmrec_assets.models.base import FitReport, ModelParams, SplitData
from lmrec_assets.models.costs import NUMPY_BASE_BYTES, Cost, DataSize, data_bytes, scoring_bytes, scoring_cells_seconds


class Popularity:
    name = "popularity"
    code_version = "1"
    kind = "numpy"
    upstream = ()
    Params = ModelParams

    def __init__(self, params: ModelParams | None = None) -> None:
        self.params = params or self.Params()
        self.item_counts: np.ndarray | None = None

    def fit(self, data: SplitData) -> FitReport:
        items = np.concatenate(data.train_sequences) if data.train_sequences else np.array([], dtype=np.int64)
        self.item_counts = np.bincount(items, minlength=data.n_items).astype(np.float32)
        return FitReport()

    @classmethod
    def cost(cls, params: ModelParams, size: DataSize) -> Cost:
        return Cost(seconds=1e-7 * size.n_interactions, scoring_seconds=scoring_cells_seconds(size),
                    peak_bytes=int(NUMPY_BASE_BYTES + data_bytes(size) + scoring_bytes(size)),
                    basis="item counts; scoring = every evaluation user × catalogue item")

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.item_counts, (len(users), len(self.item_counts))).copy()

    def save(self, path: Path) -> None:
        save_file({"item_counts": self.item_counts}, str(path / "model.safetensors"))
        (path / "params.json").write_text(self.params.model_dump_json())

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        model.item_counts = load_file(str(path / "model.safetensors"))["item_counts"]
        return model
