"""How fast the product encodes item texts and user prompts on this machine, at each encoder precision.

What is timed is the product's own path, `models.text.encode_texts` (what the item_embeddings asset and the zero-shot
model's prompts go through), with an empty cache per precision so every text is really encoded; loading the encoder
is timed apart. Inputs:
- item texts: N (default 50,000) `item_text`s of the demo generator's catalogue, built as dim_items.sql builds them
  ("<title>. Genres: <a>, <b>. <description>"), or a column of your file (`--texts file.parquet|csv --column item_text`);
- user prompts: M (default 5,000) prompts through `render_history_prompt` from 5 random catalogue titles each, as the
  LM models prompt with their default max_history_items = 5.
Each precision of LMREC_ENCODER_PRECISION (fp32, int8, bf16) is compared with fp32: mean and min cosine per text.
Targets (issue 15), printed beside: 50k item texts in <= 120 s and >= 250 prompts/s on 2 idle cores.

Usage: python benchmarks/encoding.py [--items 50000] [--prompts 5000] [--precisions fp32,int8,bf16] [--threads N]
                                     [--texts FILE --column item_text] [--out benchmarks/results]
Writes <out>/encoding.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TARGET_ITEMS, TARGET_ITEM_SECONDS, TARGET_PROMPTS_PER_S = 50_000, 120.0, 250.0


def demo_items(n: int, seed: int) -> tuple[list[str], list[str]]:
    """(item_text, title) of the demo generator's first n items (its catalogue depends only on seed and n)."""
    from lmrec_assets.ingestion.sources.demo import MIN_HISTORY, generate_demo

    items = generate_demo(seed=seed, n_users=1, n_items=n, n_interactions=MIN_HISTORY).items.frame
    # As dbt_project/models/marts/dim_items.sql (every demo item has categories and a description).
    texts = [f"{t}. Genres: {c.replace('|', ', ')}. {d}" for t, c, d in zip(items.title, items.categories, items.description)]
    return texts, items.title.tolist()


def file_items(path: str, column: str, n: int) -> tuple[list[str], list[str]]:
    """The first n values of `column`; titles from a `title` column, else each text up to its first '. '."""
    frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    frame = frame.dropna(subset=[column]).head(n)
    texts = frame[column].astype(str).tolist()
    titles = frame["title"].astype(str).tolist() if "title" in frame else [t.split(". ")[0] for t in texts]
    return texts, titles


def encode_at(precision: str, texts: list[str], prompts: list[str], batch_size: int) -> dict:
    """Encode both sets at one precision through encode_texts, each into an empty cache."""
    import torch

    from lmrec_assets.models.device import resolve_device
    from lmrec_assets.models.text import encode_texts, encoder_precision, encoding_threads, sentence_encoder

    os.environ["LMREC_ENCODER_PRECISION"] = precision
    effective = encoder_precision()
    started = time.perf_counter()
    encoder = sentence_encoder(None, effective)
    encoder.encode(["warm-up"] * 8)
    load_seconds = time.perf_counter() - started
    out = {"precision": precision, "effective_precision": effective, "load_seconds": load_seconds,
           "device": "cpu" if effective.startswith("int8") else str(resolve_device()), "threads": encoding_threads()}
    for name, batch in (("items", texts), ("prompts", prompts)):
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            vectors, n_new = encode_texts(batch, batch_size=batch_size, cache_dir=Path(cache))
            seconds = time.perf_counter() - started
        assert n_new == len(set(batch)), (n_new, len(set(batch)))
        out[name] = {"n": len(batch), "seconds": seconds, "per_second": len(batch) / seconds}
        out[f"{name}_vectors"] = vectors
    torch.set_num_threads(out["threads"])  # encode_texts restores the caller's setting; keep it for the next run
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--prompts", type=int, default=5_000)
    parser.add_argument("--precisions", default="fp32,int8,bf16")
    parser.add_argument("--texts", help="parquet or csv file with the item texts (default: the demo generator)")
    parser.add_argument("--column", default="item_text")
    parser.add_argument("--threads", type=int, help="torch threads (default: OMP_NUM_THREADS, else every usable core)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # what encode_texts reads (encoding_threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from lmrec_assets.models.device import cpu_has_bf16
    from lmrec_assets.models.text import render_history_prompt

    precisions = ["fp32", *[p for p in args.precisions.split(",") if p and p != "fp32"]]  # fp32: the reference
    texts, titles = file_items(args.texts, args.column, args.items) if args.texts else demo_items(args.items, args.seed)
    rng = np.random.default_rng(args.seed)
    prompts = [render_history_prompt([titles[i] for i in rng.choice(len(titles), 5, replace=False)], max_items=5)
               for _ in range(args.prompts)]
    print(f"{len(texts)} item texts (mean {np.mean([len(t) for t in texts]):.0f} chars), {len(prompts)} prompts; "
          f"e.g. {texts[0]!r} / {prompts[0]!r}", flush=True)

    runs = []
    for precision in precisions:
        run = encode_at(precision, texts, prompts, args.batch_size)
        runs.append(run)
        print(f"{precision}: items {run['items']['seconds']:.1f} s, prompts {run['prompts']['seconds']:.1f} s", flush=True)
    reference = runs[0]
    rows = []
    for run in runs:
        cos_items = np.sum(run["items_vectors"] * reference["items_vectors"], axis=1)
        cos_prompts = np.sum(run["prompts_vectors"] * reference["prompts_vectors"], axis=1)
        item_seconds_50k = run["items"]["seconds"] * TARGET_ITEMS / run["items"]["n"]
        rows.append({
            "precision": run["precision"], "ran as": run["effective_precision"], "device": run["device"],
            "threads": run["threads"], "load s": round(run["load_seconds"], 1),
            "item texts": run["items"]["n"], "items s": round(run["items"]["seconds"], 1),
            "texts/s": round(run["items"]["per_second"], 1), "50k items s (est.)": round(item_seconds_50k, 1),
            "prompts": run["prompts"]["n"], "prompts s": round(run["prompts"]["seconds"], 1),
            "prompts/s": round(run["prompts"]["per_second"], 1),
            "cos items mean": round(float(cos_items.mean()), 5), "cos items min": round(float(cos_items.min()), 5),
            "cos prompts mean": round(float(cos_prompts.mean()), 5), "cos prompts min": round(float(cos_prompts.min()), 5),
            "items target met": bool(item_seconds_50k <= TARGET_ITEM_SECONDS),
            "prompts target met": bool(run["prompts"]["per_second"] >= TARGET_PROMPTS_PER_S),
        })
    table = pd.DataFrame(rows)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
               "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_has_bf16": cpu_has_bf16(),
               "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
               "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    targets = (f"targets: {TARGET_ITEMS:,} item texts in <= {TARGET_ITEM_SECONDS:g} s "
               f"(>= {TARGET_ITEMS / TARGET_ITEM_SECONDS:.0f} texts/s), >= {TARGET_PROMPTS_PER_S:g} prompts/s, on 2 idle cores")
    print(table.to_string(index=False))
    print(targets)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = args.texts or f"demo generator (seed {args.seed})"
    (out / "encoding.json").write_text(json.dumps({"source": source, "batch_size": args.batch_size, "machine": machine,
                                                   "targets": targets, "rows": rows}, indent=2))
    (out / "encoding.md").write_text("\n".join([
        "# Encoding throughput by encoder precision (`benchmarks/encoding.py`)", "",
        f"Item texts: {source}; prompts: `render_history_prompt` of 5 random titles; `encode_texts` into an empty "
        f"cache, batch size {args.batch_size}; cosine per text against fp32.", "",
        f"Machine: {json.dumps(machine)}", "", table.to_markdown(index=False), "", targets, "",
    ]))
    print(f"wrote {out / 'encoding.md'}")


if __name__ == "__main__":
    main()
