"""Does blending the two sequential models close issue #3's Target 1 on ML-100K? (NDCG@10 ≥ 1.15 × RecBole's
SASRec 0.1110 = 0.1277.)

SASRec and the text+ID hybrid, each with its leaderboard setting (`QUALITY`: 3-member seed ensembles), are trained
once; the blend scores every item by w · log P_sasrec + (1 - w) · log P_hybrid (both models already output mean
member log-probabilities, so the scales match). w is chosen on the valid split from a grid; test is read for the
chosen w and for the two models alone. Protocol as the leaderboard: per-user leave-one-out by time, full ranking
over all items, seen items masked. Benchmark only: the blend is not a model asset.

Usage: python benchmarks/blend_ml100k.py   → benchmarks/results/blend_ml100k.{json,md}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"
WEIGHTS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)  # weight of SASRec
TARGET = 1.15 * 0.1110


class Blend:
    name = "blend"

    def __init__(self, sasrec, hybrid, weight: float) -> None:
        self.sasrec, self.hybrid, self.weight = sasrec, hybrid, weight

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self.weight * self.sasrec.score(users, histories) + (1 - self.weight) * self.hybrid.score(users, histories)


def main() -> None:
    import duckdb
    import pandas as pd
    import torch

    from leaderboard import code_commit, prepare
    from lmrec_assets.models.ranking import evaluate
    from lmrec_assets.models import hybrid, sasrec
    from lmrec_assets.models.data import load_split_data
    from lmrec_assets.models.profiles import NIGHTLY, training_params

    torch.set_num_threads(2)
    with duckdb.connect(str(prepare("ml100k")), read_only=True) as con:
        data = load_split_data(con)
    fitted, seconds = {}, {}
    for name, cls in (("sasrec", sasrec.SASRec), ("hybrid_seq", hybrid.HybridSeq)):
        started = time.perf_counter()
        fitted[name] = cls(training_params(cls, NIGHTLY))  # the nightly profile (QUALITY), as the asset trains it
        fitted[name].fit(data)
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name} fitted in {seconds[name]} s", flush=True)

    ndcg = lambda model, split: float(evaluate(model, data, split, ks=(10,)).loc[0, "ndcg"])  # noqa: E731
    valid = {w: ndcg(Blend(fitted["sasrec"], fitted["hybrid_seq"], w), "valid") for w in WEIGHTS}
    chosen = max(WEIGHTS, key=lambda w: (valid[w], -abs(w - 0.5)))  # ties: the more even blend
    rows = []
    for label, w in (("blend (w chosen on valid)", chosen), ("sasrec alone", 1.0), ("hybrid_seq alone", 0.0)):
        test = evaluate(Blend(fitted["sasrec"], fitted["hybrid_seq"], w), data, "test", ks=(10, 20)).set_index("k")
        rows.append({"model": label, "sasrec_weight": w, "valid_ndcg@10": valid[w],
                     **{f"{m}@{k}": float(test.loc[k, m]) for k in (10, 20) for m in ("hr", "ndcg")},
                     "mrr@10": float(test.loc[10, "mrr"])})
    result = {"rows": rows, "valid_grid": valid, "chosen_weight": chosen, "fit_seconds": seconds,
              "settings": {"sasrec": sasrec.QUALITY, "hybrid_seq": hybrid.QUALITY}, "target": TARGET,
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "code": code_commit()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "blend_ml100k.json").write_text(json.dumps(result, indent=2, default=float))
    best = rows[0]["ndcg@10"]
    lines = [
        "# SASRec + hybrid blend on ML-100K (issue #3, Target 1)", "",
        "Protocol: per-user leave-one-out by time (ties keep file order); full ranking over all 1,682 items; seen items "
        "masked; test split, 943 users. Blend score = w · log P(SASRec) + (1 - w) · log P(hybrid), each model its "
        "leaderboard `QUALITY` setting (3-member seed ensembles); w chosen on valid NDCG@10 from "
        f"{list(WEIGHTS)}; test read for the chosen w and the two endpoints only. Benchmark only (not a model asset).", "",
        pd.DataFrame(rows).round(4).to_markdown(index=False), "",
        "Valid NDCG@10 per w: " + ", ".join(f"{w:g}: {v:.4f}" for w, v in valid.items()) + ".", "",
        f"Target 1 (≥ {TARGET:.4f}): {'met' if best >= TARGET else f'missed by {TARGET - best:.4f}'} by the blend "
        f"({best:.4f}). Fit: {json.dumps(seconds)} s on 2 cores. Measured {result['measured_at']}, code {result['code']}.",
    ]
    (RESULTS / "blend_ml100k.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
