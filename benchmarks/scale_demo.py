"""Benchmark: the pipeline at scale on the synthetic generator (demo scale 200 ≈ 100k users × 50k items × 10M events).

Stages and what runs in each (the product's own code; only the scorer is benchmark-specific):
1. ingestion: the `raw_tables` asset (generate the demo source, validate every row, land in DuckDB);
2. dbt: the `dbt_features` asset (`dbt build`: staging → marts, the leave-one-out split, dbt tests);
3. item embeddings: the `item_embeddings` asset (MiniLM over every item_text; content cache cleared first);
4. scoring + top-20: for every user, score = dot(user vector, item embedding) over the whole catalogue, where the user
   vector is the mean of the L2-normalised embeddings of the user's whole history (an item-embedding centroid, the
   zero-shot model's item side without its per-user LM pass); history masked, `ranking.top_k`, users in blocks so
   memory stays bounded. EASE is not run: its 50k × 50k inverse alone would need 10 GB;
5. materialization: the top-20 rows into `recs.scale_recommendations` and a serving-style DuckDB file clustered by
   user (as `published_recommendations` writes it);
6. serving lookup: one user's top-10 over a held-open read-only connection, for 1,000 random users (p50 / p99).

dbt's tests run (they are part of `dbt build`); the Great Expectations suites are left out of the run.
Usage: python benchmarks/scale_demo.py [--scale 200] [--block 4096] [--threads 2]
Writes benchmarks/results/scale_demo.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp
from dagster import AssetSelection, DagsterInstance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.pipeline_ml100k import step_seconds  # noqa: E402
from lmrec_assets.evaluation.quality import quality_checks  # noqa: E402
from lmrec_assets.models.ranking import batches, mask_seen, top_k  # noqa: E402
from lmrec_assets.ingestion.sources.demo import demo_size  # noqa: E402
from lmrec_assets.models.data import load_split_data  # noqa: E402
from tests.integration.pipeline import materialize_all  # noqa: E402

K = 20
GFLOPS = 80.0  # dense fp32 matrix products on this machine's 2 cores (the figure)


class PeakRss:
    """Peak resident memory of this process plus its children (dbt), sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def score_all_users(data, embeddings: np.ndarray, block: int) -> tuple[pd.DataFrame, dict]:
    """Top-K for every user by item-embedding centroid, one block of users at a time."""
    histories = data.histories("test")
    timings = {"user_vectors": 0.0, "matmul": 0.0, "mask": 0.0, "top_k": 0.0}
    items_out = np.empty((data.n_users, K), dtype=np.int32)
    scores_out = np.empty((data.n_users, K), dtype=np.float32)
    item_t = np.ascontiguousarray(embeddings.T)
    for users in batches(np.arange(data.n_users), block):
        started = time.perf_counter()
        lengths = np.array([len(histories[u]) for u in users])
        weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
        pointers = np.concatenate([[0], np.cumsum(lengths)])
        mean_of_history = sp.csr_matrix((weights, np.concatenate([histories[u] for u in users]), pointers),
                                        shape=(len(users), data.n_items))
        user_vectors = np.asarray(mean_of_history @ embeddings, dtype=np.float32)
        t1 = time.perf_counter()
        scores = user_vectors @ item_t
        t2 = time.perf_counter()
        mask_seen(scores, users, histories)
        t3 = time.perf_counter()
        items_out[users], scores_out[users] = top_k(scores, K)
        t4 = time.perf_counter()
        timings["user_vectors"] += t1 - started
        timings["matmul"] += t2 - t1
        timings["mask"] += t3 - t2
        timings["top_k"] += t4 - t3
    frame = pd.DataFrame({
        "user_id": np.repeat(data.user_ids, K),
        "rank": np.tile(np.arange(1, K + 1, dtype=np.int32), data.n_users),
        "item_id": data.item_ids[items_out.ravel()],
        "score": scores_out.ravel().astype(np.float64),
    })
    return frame, {k: round(v, 1) for k, v in timings.items()}


def lookup_latency(serving: Path, user_ids: np.ndarray, n: int = 1000, seed: int = 0) -> dict:
    """One user's top-10 over a held-open read-only connection (an analyst's session)."""
    rng = np.random.default_rng(seed)
    users = rng.choice(user_ids, size=n, replace=len(user_ids) < n)
    with duckdb.connect(str(serving), read_only=True) as con:
        query = "select rank, item_id, score from recommendations where user_id = ? and rank <= 10 order by rank"
        for user in users[:20]:  # warm-up: open the file's blocks once
            con.execute(query, [str(user)]).fetchall()
        seconds = []
        for user in users:
            started = time.perf_counter()
            rows = con.execute(query, [str(user)]).fetchall()
            seconds.append(time.perf_counter() - started)
            assert len(rows) == 10
    ms = np.array(seconds) * 1000
    return {"n": n, "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=200.0)
    parser.add_argument("--block", type=int, default=2048, help="users scored per block (memory: block × items × 4 B)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", help="keep the warehouse in this folder instead of a temporary one")
    args = parser.parse_args()
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    import torch

    torch.set_num_threads(args.threads)
    n_users, n_items, n_interactions = demo_size(args.scale)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lmrec-scale-"))
    os.environ["LMREC_DATA_DIR"] = str(tmp)  # the embedding cache lives under the data dir: start it empty
    shutil.rmtree(tmp / "cache", ignore_errors=True)
    stages: dict[str, float] = {}
    started_all = time.perf_counter()
    with PeakRss() as rss:
        instance = DagsterInstance.ephemeral()
        # dbt tests are asset checks and stay in (dbt build runs them); the Great Expectations suites are left out.
        selection = (AssetSelection.groups("ingestion", "features") | AssetSelection.assets("item_embeddings")
                     ) - AssetSelection.checks(*quality_checks)
        started = time.perf_counter()
        result = materialize_all(tmp, instance=instance, selection=selection, scale=args.scale)
        pipeline_seconds = time.perf_counter() - started
        steps = step_seconds(instance, result.run_id)
        stages["ingestion (raw_tables)"] = steps.get("raw_tables", float("nan"))
        stages["dbt build (dbt_features)"] = next((v for k, v in steps.items() if "dbt" in k), float("nan"))
        stages["item embeddings (MiniLM)"] = steps.get("item_embeddings", float("nan"))
        stages["dagster overhead"] = pipeline_seconds - sum(steps.values())

        warehouse = tmp / "warehouse" / "lmrec.duckdb"
        started = time.perf_counter()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            data = load_split_data(con)
        embedding_dir = next((tmp / "artifacts" / "item_embeddings").iterdir())
        from safetensors.numpy import load_file

        embeddings = load_file(str(embedding_dir / "embeddings.safetensors"))["embeddings"]
        item_order = json.loads((embedding_dir / "item_ids.json").read_text())
        assert item_order == data.item_ids.tolist(), "embeddings and split disagree on the catalogue order"
        stages["load split + embeddings"] = time.perf_counter() - started

        started = time.perf_counter()
        recs, kernel = score_all_users(data, embeddings, args.block)
        stages["scoring + top-20 (all users)"] = time.perf_counter() - started

        started = time.perf_counter()
        serving = tmp / "serving" / "scale_serving.duckdb"
        serving.parent.mkdir(parents=True, exist_ok=True)
        serving.unlink(missing_ok=True)
        with duckdb.connect(str(warehouse)) as con:
            con.register("_recs", recs)
            con.execute("create schema if not exists recs")
            con.execute("create or replace table recs.scale_recommendations as select * from _recs")
            con.execute("attach ? as serving", [str(serving)])
            con.execute("create table serving.recommendations as select * from _recs order by user_id, rank")
            con.execute("detach serving")
        stages["materialize top-20 (warehouse + serving file)"] = time.perf_counter() - started
    total = time.perf_counter() - started_all
    latency = lookup_latency(serving, data.user_ids)

    flops = 2.0 * data.n_users * data.n_items * embeddings.shape[1]
    floor = flops / (GFLOPS * 1e9)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "scale": args.scale,
        "requested_size": {"users": n_users, "items": n_items, "interactions": n_interactions},
        "split": {"users": data.n_users, "items": data.n_items, "train_interactions": int(sum(map(len, data.train_sequences)))},
        "recommendation_rows": len(recs),
        "block_users": args.block,
        "threads": args.threads,
        "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
        "scoring_kernel_seconds": kernel,
        "total_seconds": round(total, 1),
        "peak_rss_mib": round(max(rss.peak / 2**20, self_peak)),
        "scoring_flop": flops,
        "scoring_floor_seconds_at_80_gflops": round(floor, 1),
        "lookup": latency,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_demo.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Scale benchmark: synthetic demo at scale {args.scale:g}",
        "",
        f"Measured {report['measured_at']} on {report['machine']} (torch/BLAS threads: {args.threads}; shared machine).",
        f"Data: {data.n_users:,} users × {data.n_items:,} items, {n_interactions:,} interactions generated; "
        f"{report['split']['train_interactions']:,} in the train split. {len(recs):,} recommendation rows (top-{K}, every user).",
        "",
        f"**Whole run: {report['total_seconds']} s; peak RSS {report['peak_rss_mib']:,} MiB** (this process and its children, sampled).",
        "",
        "| stage | seconds |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["stage_seconds"].items()],
        "",
        f"Scoring kernel ({args.block} users per block): " + ", ".join(f"{k} {v} s" for k, v in kernel.items())
        + f". The product users × items × {embeddings.shape[1]} dims is {flops / 1e12:.2f} TFLOP: "
        f"{floor:.0f} s at {GFLOPS:g} GFLOP/s, so the matrix products ran at "
        f"{flops / 1e9 / max(kernel['matmul'], 1e-9):.0f} GFLOP/s and the whole step took "
        f"{stages['scoring + top-20 (all users)'] / floor:.1f}× the floor.",
        "",
        f"Serving lookup (one user's top-10, {latency['n']:,} random users, held-open read-only connection): "
        f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms.",
        "",
        "Scorer: item-embedding centroid (user vector = mean of the MiniLM embeddings of the user's history; dot product "
        "with every item; history masked). EASE is not run at this size: its 50k × 50k inverse needs 10 GB.",
        "dbt build includes the dbt tests; the Great Expectations suites were not part of the run.",
    ]
    (out / "scale_demo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
