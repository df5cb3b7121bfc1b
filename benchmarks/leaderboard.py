"""Leaderboard: every model on the same split, with the same metrics, on real data (issue: LM adaptation).

Protocol: per-user leave-one-out by time (ties keep file order), full ranking over all items, seen items masked;
hyperparameters chosen on valid only; test is read once per model. Each model runs in its own process so its peak
RSS and wall time are its own. Cold start: 10% of items (seed 0) are removed from training entirely; cold HR@10 /
NDCG@10 are measured on test users whose target is one of them (for MovieLens, whose items are never cold otherwise).

Usage:
  python benchmarks/leaderboard.py                              # ML-100K, all models, cold holdout
  python benchmarks/leaderboard.py --datasets mlsmall5 mlsmall  # ml-latest-small, 5-core filtered (LlamaRec) and raw
  python benchmarks/leaderboard.py --datasets toys               # Amazon Toys, 3,000 seeded evaluation users
Writes benchmarks/results/leaderboard_<dataset>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("LMREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
BENCH = ROOT / "data" / "bench"
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {
    "ml100k": {"source": "movielens-100k", "path": str(SHARED / "ml-100k")},
    "mlsmall": {"source": "movielens-latest-small", "path": str(SHARED / "ml-latest-small")},
    "mlsmall5": None,  # built below: ml-latest-small with LlamaRec's 5-core filter, through the generic files source
    "toys": None,  # Amazon Toys & Games 5-core sequences (the experiments group's domain), through the files source
}
TITLES = {"mlsmall": "mlsmall (ml-latest-small, no filtering)",
          "mlsmall5": "mlsmall5 (ml-latest-small, LlamaRec's 5-core filter)",
          "toys": "toys (Amazon Toys & Games 5-core)"}
# Valid/test users scored per dataset (0: all): on Toys (19,412 users) a seeded sample of 3,000, the same for every
# model; every item is still ranked. Training uses every user's train sequence.
EVAL_USERS = {"toys": 3000}
EVAL_SEED = 7
LM_MODELS = ("zero_shot_prompt", "lm_finetune", "lm_prompt_tuning")
PEERS = "RecBole on this machine, same protocol (ML-100K test NDCG@10): SASRec 0.1110, GRU4Rec 0.1061, BERT4Rec 0.1015, EASE 0.0706, Pop 0.0354"


def prepare(dataset: str) -> Path:
    """Ingest + dbt (the real pipeline, skip-unchanged on re-runs); returns the warehouse path."""
    from dagster import AssetSelection

    from tests.integration.pipeline import materialize_all

    data_dir = BENCH / dataset
    spec = DATASETS[dataset] or (_toys_files() if dataset == "toys" else _five_core_files(data_dir))
    selection = AssetSelection.groups("ingestion", "features")
    materialize_all(data_dir, selection=selection, **spec)
    return data_dir / "warehouse" / "lmrec.duckdb"


def _five_core_files(data_dir: Path) -> dict:
    """ml-latest-small with users and items of ≥ 5 interactions (iterated to a fixed point), file order kept."""
    ratings = pd.read_csv(SHARED / "ml-latest-small" / "ratings.csv")
    while True:
        users = ratings.userId.map(ratings.userId.value_counts())
        items = ratings.movieId.map(ratings.movieId.value_counts())
        kept = ratings[(users >= 5) & (items >= 5)]
        if len(kept) == len(ratings):
            break
        ratings = kept
    folder = data_dir / "input"
    folder.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(folder / "ratings.csv", index=False)
    movies = pd.read_csv(SHARED / "ml-latest-small" / "movies.csv")
    movies[movies.movieId.isin(ratings.movieId)].to_csv(folder / "movies.csv", index=False)
    spec = {"interactions": str(folder / "ratings.csv"), "items": str(folder / "movies.csv"),
            "column_map": {"user_id": "userId", "item_id": "movieId", "categories": "genres"}}
    return {"source": "files", "files_spec": json.dumps(spec)}


def _toys_files() -> dict:
    from lmrec_assets.experiments.domains import amazon_toys

    spec = amazon_toys().files_spec | {"interactions": str(SHARED / "amazon-toys" / "sequential.txt"),
                                       "items": str(SHARED / "amazon-toys" / "Toys_item_text.jsonl")}
    return {"source": "files", "files_spec": json.dumps(spec)}


def cold_holdout(data, fraction: float = 0.1, seed: int = 0):
    """The same split with a random `fraction` of items removed from every train sequence."""
    rng = np.random.default_rng(seed)
    cold = rng.choice(data.n_items, size=int(fraction * data.n_items), replace=False)
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[cold] = True
    sequences = [seq[~is_cold[seq]] for seq in data.train_sequences]
    return replace(data, train_sequences=sequences), is_cold


def benchmark_params(name: str, override: dict, budget_minutes: float | None = None):
    """The benchmark setting of model `name`: the `nightly` training profile (its QUALITY over the Params defaults),
    with `override` applied wherever the model has those params and, with `budget_minutes`, the model's share of that
    run budget. The same function the model assets call (`lmrec_assets.models.profiles.training_params`), so the
    leaderboard measures what the nightly refresh trains (the refresh's default budget is 45 min: pass it to match)."""
    from lmrec_assets.models import profiles
    from lmrec_assets.models.assets import MODELS

    model_class = MODELS[name][0]
    known = {k: v for k, v in override.items() if k in model_class.Params.model_fields}
    shares = profiles.budget_shares({n: cls for n, (cls, _) in MODELS.items()}, profiles.NIGHTLY, budget_minutes)
    return profiles.training_params(model_class, profiles.NIGHTLY, known, budget_share=shares.get(name))


def run_one(warehouse: str, name: str, cold: bool, out: str, override: dict, budget_minutes: float | None = None,
            eval_users: int = 0) -> None:
    """Fit one model with its benchmark setting, evaluate, write JSON (runs in a fresh process)."""
    import duckdb
    import torch

    from lmrec_assets.models.ranking import evaluate
    from lmrec_assets.memory import peak_rss_mib
    from lmrec_assets.models.assets import MODELS
    from lmrec_assets.experiments.sampling import evaluation_sample
    from lmrec_assets.models.data import load_split_data

    torch.set_num_threads(os.cpu_count() or 2)
    with duckdb.connect(warehouse, read_only=True) as con:
        data = evaluation_sample(load_split_data(con), eval_users, EVAL_SEED)
    name, _, ranker = name.partition(":")  # "lm_rerank:zero_shot" = lm_rerank with that ranker mode
    override = override | ({"ranker": ranker} if ranker else {})
    model_class = MODELS[name][0]
    params = benchmark_params(name, override, budget_minutes)
    started = time.perf_counter()
    model = model_class(params)
    artifacts = Path(warehouse).parents[1] / "artifacts"  # every fitted model is kept: lm_rerank's retrievers
    if hasattr(model, "attach_retrievers"):
        from lmrec_assets.models.registry import load_model

        model.attach_retrievers({n: load_model(n, str(artifacts / n)) for n in model_class.upstream
                                 if (artifacts / n / "params.json").is_file()})
    report = model.fit(data)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    test = evaluate(model, data, "test", ks=(10, 20)).set_index("k")
    score_seconds = time.perf_counter() - started
    if not ranker:  # variants are not kept: the folder is what other models read
        (artifacts / name).mkdir(parents=True, exist_ok=True)
        model.save(artifacts / name)
    valid = evaluate(model, data, "valid", ks=(10,)).set_index("k")
    row = {
        "model": name + (f":{ranker}" if ranker else ""), "params": params.model_dump(), "fitted": report.params,
        "trainable_parameters": report.trainable_parameters, "fit_seconds": round(fit_seconds, 1),
        "test_scoring_seconds": round(score_seconds, 1),
        "valid_ndcg@10": valid.loc[10, "ndcg"],
        **{f"{m}@{k}": test.loc[k, m] for k in (10, 20) for m in ("hr", "ndcg", "recall")},
        "mrr@10": test.loc[10, "mrr"], "n_test_users": int(test.loc[10, "n_users"]),
    }
    if hasattr(model, "recall_at_n"):  # a two-stage model: its retriever alone, and the candidates' ceiling
        retriever = evaluate(model.retriever, data, "test", ks=(10,)).set_index("k")
        row |= {"retriever": model.retriever_name, "retriever_ndcg@10": retriever.loc[10, "ndcg"],
                "retriever_hr@10": retriever.loc[10, "hr"], "recall@candidates_valid": model.recall_at_n(data, "valid"),
                "recall@candidates_test": model.recall_at_n(data, "test")}
    if cold:
        held_out, is_cold = cold_holdout(data)
        cold_model = model_class(params)
        row["cold_fitted"] = cold_model.fit(held_out).params
        users = held_out.evaluation_users("test")
        users = users[is_cold[held_out.test_items[users]]]
        cold_metrics = evaluate(cold_model, held_out, "test", ks=(10,), users=users).set_index("k")
        row |= {"cold_hr@10": cold_metrics.loc[10, "hr"], "cold_ndcg@10": cold_metrics.loc[10, "ndcg"],
                "n_cold_test_users": len(users)}
    row["peak_rss_mib"] = round(peak_rss_mib())
    row |= {"measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "code": code_commit()}
    Path(out).write_text(json.dumps(row, default=float))


def code_commit() -> str:
    """The commit the model code came from, marked `+dirty` when the tracked model or metric code (`lmrec_assets/models`, which holds `ranking.py`) had changes."""
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    changed = git("diff", "--name-only", "HEAD", "--", "lmrec_assets/models")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if changed else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["ml100k"])
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--no-cold", nargs="*", default=["lm_finetune", "lm_prompt_tuning", "lm_rerank"],
                        help="models whose cold-holdout refit is skipped (time); empty list = refit all")
    parser.add_argument("--override", default="{}", help="JSON of params applied over the nightly profile (QUALITY) "
                        "wherever a model has them, e.g. '{\"ensemble\": 1}' to cut time; recorded in each row's params")
    parser.add_argument("--budget-minutes", type=float, default=None, help="cap max_minutes by each model's share of "
                        "this run budget, as the nightly refresh does (lmrec_assets/models/profiles.py; default: none)")
    parser.add_argument("--eval-users", type=int, default=0, help="with --run-one: seeded sample of valid/test users")
    parser.add_argument("--run-one", nargs=4, metavar=("WAREHOUSE", "MODEL", "COLD", "OUT"))
    parser.add_argument("--report-only", action="store_true", help="rewrite each dataset's markdown from its "
                        "committed JSON and notes file, running nothing")
    args = parser.parse_args()
    if args.report_only:
        for dataset in args.datasets:
            write(dataset, json.loads((RESULTS / f"leaderboard_{dataset}.json").read_text()), echo=False)
        return
    if args.run_one:
        warehouse, name, cold, out = args.run_one
        return run_one(warehouse, name, cold == "1", out, json.loads(args.override), args.budget_minutes, args.eval_users)

    from lmrec_assets.models.assets import MODELS

    for dataset in args.datasets:
        warehouse = prepare(dataset)
        rows = previous_rows(dataset, keep_all_but=args.models) if args.models else []
        for name in args.models or list(MODELS):
            out = BENCH / dataset / f"leaderboard_{name}.json"
            cold = "0" if name.partition(":")[0] in args.no_cold else "1"
            print(f"[{dataset}] {name} ...", flush=True)
            command = [sys.executable, __file__, "--run-one", str(warehouse), name, cold, str(out), "--override", args.override,
                       "--eval-users", str(EVAL_USERS.get(dataset, 0)),
                       *(["--budget-minutes", str(args.budget_minutes)] if args.budget_minutes is not None else [])]
            done = subprocess.run(command)
            if done.returncode != 0:
                rows.append({"model": name, "error": f"exit {done.returncode}"})
                continue
            rows.append(json.loads(out.read_text()))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("params", "fitted", "cold_fitted")}), flush=True)
        write(dataset, rows)


def previous_rows(dataset: str, keep_all_but: list[str]) -> list[dict]:
    """The committed rows of the models not re-run now, so a leaderboard can be refreshed a few models at a time."""
    path = RESULTS / f"leaderboard_{dataset}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    return [row for row in rows if row["model"] not in keep_all_but]


def lm_budget_line(rows: list[dict]) -> str:
    """The issue's budget: all LM models together train on ML-100K in ≤ 20 minutes on 2 cores (nightly setting)."""
    fitted = {row["model"]: row["fit_seconds"] for row in rows if row["model"] in LM_MODELS and "fit_seconds" in row}
    if not fitted:
        return ""
    total = sum(fitted.values())
    parts = " + ".join(f"{name} {seconds:.0f} s" for name, seconds in fitted.items())
    with_hybrid = next((row["fit_seconds"] for row in rows if row["model"] == "hybrid_seq" and "fit_seconds" in row), None)
    hybrid = f"; with hybrid_seq (frozen LM text vectors) {(total + with_hybrid) / 60:.1f} min" if with_hybrid else ""
    return (f"LM training budget (fit wall time incl. valid early stopping, budget 20 min): {parts} = "
            f"{total / 60:.1f} min{hybrid}.")


def write(dataset: str, rows: list[dict], echo: bool = True) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"leaderboard_{dataset}.json").write_text(json.dumps(rows, indent=2, default=float))
    frame = pd.DataFrame(rows)
    columns = [c for c in ["model", "hr@10", "ndcg@10", "recall@10", "hr@20", "ndcg@20", "mrr@10", "cold_hr@10",
                           "cold_ndcg@10", "valid_ndcg@10", "retriever", "retriever_ndcg@10", "recall@candidates_test", "fit_seconds", "peak_rss_mib", "trainable_parameters",
                           "code", "error"] if c in frame]
    table = frame[columns].sort_values("ndcg@10", ascending=False) if "ndcg@10" in frame else frame
    # The hand-written reading of the numbers (what was re-run, targets, what was tried) lives in its own file, so a
    # re-run regenerates the table without losing it.
    notes = RESULTS / f"leaderboard_{dataset}_notes.md"
    lines = [
        f"# Leaderboard: {TITLES.get(dataset, dataset)}", "", *([notes.read_text().strip(), ""] if notes.exists() else []),
        "Protocol: per-user leave-one-out by time (ties keep file order); full ranking over all items; seen items "
        "masked; test split (one held-out item per user, so Recall = HR). Hyperparameters chosen on valid only. "
        "Cold: 10% of items removed from training (seed 0), metrics on test users whose target is one of them "
        "(blank: refit skipped for time). Each model in its own process on 2 CPU cores; fit_seconds includes "
        "valid-split early stopping; peak RSS of that process." + (
            f" Evaluated on a seeded sample of {EVAL_USERS[dataset]:,} valid/test users (seed {EVAL_SEED}), the same "
            "for every model; every item is ranked." if EVAL_USERS.get(dataset) else "") + (
            " Toys has no timestamps: time = position in the user's sequence." if dataset == "toys" else ""), "",
        table.round(4).to_markdown(index=False), "", PEERS if dataset == "ml100k" else "", "", lm_budget_line(rows),
    ]
    (RESULTS / f"leaderboard_{dataset}.md").write_text("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
