"""Benchmark: the whole pipeline on MovieLens-100K (ingest → dbt build → models → recommendations → evaluation).

Prints and writes `benchmarks/results/pipeline_<dataset>.{json,md}`: wall time per step and total, peak RSS, and the
test metrics. Protocol: per-user leave-one-out by time (ties keep file order), full ranking over all items, seen
items masked. Usage: python benchmarks/pipeline_ml100k.py [--data ../shared/data/ml-100k] [--dataset movielens-100k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from dagster import AssetSelection, DagsterEventType, DagsterInstance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.integration.pipeline import materialize_all  # noqa: E402  (the same entry point the tests use)

RECBOLE_PEERS = {"EASE": (0.1347, 0.0706), "ItemKNN": (0.1145, 0.0629), "BPR": (0.1241, 0.0673), "SASRec": (0.2206, 0.1110)}


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    starts, seconds = {}, defaultdict(float)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            seconds[event.step_key] += record.timestamp - starts.pop(event.step_key)
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--models", nargs="+", default=["popularity", "ease"],
                        help="model assets to include (the language models have their own leaderboard benchmark)")
    args = parser.parse_args()
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

    with tempfile.TemporaryDirectory() as tmp:
        instance = DagsterInstance.ephemeral()
        started = time.perf_counter()
        selection = AssetSelection.all() - AssetSelection.groups("models") | AssetSelection.assets(*args.models)
        result = materialize_all(Path(tmp), instance=instance, selection=selection, source=args.dataset, path=args.data)
        total = time.perf_counter() - started
        steps = step_seconds(instance, result.run_id)
        with duckdb.connect(str(Path(tmp) / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
            metrics = con.execute(
                "select model, split, k, hr, ndcg, mrr, recall, precision, coverage, n_users, protocol "
                "from evaluation.evaluation_metrics where segment = 'all' order by split, model, k"
            ).df()
            params = con.execute("select model, params, fit_seconds from models.model_registry").df()
    peak_rss_mib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

    test = metrics[metrics.split == "test"]
    report = {
        "dataset": args.dataset,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "protocol": metrics.protocol.iloc[0],
        "total_seconds": round(total, 1),
        "step_seconds": {k: round(v, 1) for k, v in sorted(steps.items())},
        "peak_rss_mib": round(peak_rss_mib),
        "model_params": params.to_dict(orient="records"),
        "metrics": metrics.drop(columns="protocol").round(4).to_dict(orient="records"),
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = f"pipeline_{args.dataset.replace('movielens-', 'ml')}"
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))

    board = test.pivot_table(index="model", columns="k", values=["hr", "ndcg", "mrr"])
    board.columns = [f"{m.upper()}@{k}" for m, k in board.columns]
    lines = [
        f"# Pipeline benchmark: {args.dataset}",
        "",
        f"Measured {report['measured_at']} on {report['machine']}. Protocol: {report['protocol']}; test split.",
        "",
        f"Total wall time (ingest + dbt build with tests + models + recommendations + evaluation): **{report['total_seconds']} s**; peak RSS {report['peak_rss_mib']} MiB (max of this process and its children, e.g. dbt).",
        "",
        "| step | seconds |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["step_seconds"].items()],
        "",
        "## Test metrics (full ranking)",
        "",
        board.round(4).reset_index().to_markdown(index=False),
        "",
        "RecBole 1.2.1 peers on this machine, same protocol (HR@10 / NDCG@10): "
        + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in RECBOLE_PEERS.items()),
        "",
        "Model parameters chosen on the valid split: "
        + "; ".join(f"{r['model']}: {r['params']}" for r in report["model_params"]),
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
