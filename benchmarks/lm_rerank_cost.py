"""What a cross-encoder ranker would cost on this machine, against the late-interaction ranker lm_rerank uses.

Times the bundled MiniLM (bf16 autocast as the LM models use it, 2 threads) on real ML-100K prompts: one user prompt
alone (what lm_rerank encodes per user) versus (prompt, candidate text) pairs (what a cross-encoder would encode per
user and candidate), forward only and forward + backward. Prints a table and writes
benchmarks/results/lm_rerank_cost.{json,md}.

Usage: python benchmarks/lm_rerank_cost.py [--warehouse data/bench/ml100k/warehouse/lmrec.duckdb]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    import duckdb

    from lmrec_assets.models.lm_finetune import LMFinetune, LMFinetuneParams
    from lmrec_assets.models.lm_training import history_prompts
    from lmrec_assets.models.data import load_split_data

    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", default=str(ROOT / "data" / "bench" / "ml100k" / "warehouse" / "lmrec.duckdb"))
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    with duckdb.connect(args.warehouse, read_only=True) as con:
        data = load_split_data(con)
    lm = LMFinetune(LMFinetuneParams(max_history_items=5))
    lm.encoder = lm.build_encoder()
    users = np.arange(args.batch)
    prompts = history_prompts(data.train_sequences, users, data.item_titles, "history_v1", 5)
    rng = np.random.default_rng(0)
    candidates = [data.item_text[i] for i in rng.choice(data.n_items, args.batch)]
    pairs = lm.tokenizer(prompts, candidates, padding=True, truncation=True, max_length=256, return_tensors="pt")
    alone = lm.tokenizer(prompts, padding=True, truncation=True, max_length=128, return_tensors="pt")

    def forward(batch, backward: bool):
        def run():
            with torch.set_grad_enabled(backward), torch.autocast("cpu", dtype=torch.bfloat16):
                out = lm.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            if backward:
                out.float().mean().backward()
        return run

    rows = []
    for label, batch in (("user prompt alone (late interaction)", alone), ("(prompt, candidate) pair (cross-encoder)", pairs)):
        for backward in (False, True):
            seconds = timed(forward(batch, backward)) / args.batch
            rows.append({"input": label, "tokens": int(batch["input_ids"].shape[1]), "pass": "forward + backward" if backward else "forward",
                         "ms_per_sequence": round(1000 * seconds, 2)})
    per = {(r["input"].split(" (")[0], r["pass"]): r["ms_per_sequence"] / 1000 for r in rows}
    n_users, n_candidates, examples = 943, 50, 943 * 4
    cost = {
        "score all users, late interaction (s)": n_users * per[("user prompt alone", "forward")],
        "score all users, cross-encoder N=50 (s)": n_users * n_candidates * per[("(prompt, candidate) pair", "forward")],
        "one training epoch, late interaction (s)": examples * per[("user prompt alone", "forward + backward")],
        "one training epoch, cross-encoder N=50 (s)": examples * n_candidates * per[("(prompt, candidate) pair", "forward + backward")],
    }
    result = {"measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": torch.get_num_threads(),
              "rows": rows, "ml100k_extrapolation": {k: round(v, 1) for k, v in cost.items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lm_rerank_cost.json").write_text(json.dumps(result, indent=2))
    import pandas as pd

    lines = ["# Ranker cost on 2 CPU cores: late interaction vs cross-encoder", "",
             f"Measured {result['measured_at']} with `benchmarks/lm_rerank_cost.py` (bundled MiniLM, bf16 autocast, "
             f"{result['threads']} threads, batches of {args.batch} real ML-100K prompts, 5 history titles).", "",
             pd.DataFrame(rows).to_markdown(index=False), "",
             "Extrapolated to ML-100K (943 users, 50 candidates, 4 training cut points per user and epoch):", "",
             *[f"- {k}: {v:,.0f}" for k, v in result["ml100k_extrapolation"].items()], ""]
    (RESULTS / "lm_rerank_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
