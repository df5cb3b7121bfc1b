"""Benchmark: the nightly refresh itself, the product's own path, on a real dataset.

Runs `dagster job execute -m lmrec_assets.definitions -j refresh_all`, the job the nightly schedule launches, with the
named training profile and run budget in the environment (`LMREC_PROFILE`, `LMREC_TRAINING_BUDGET_MINUTES`), into a
fresh data folder and Dagster instance. Then reads what the run published: wall time per step from the instance's
event log, the evaluation table (test split, full ranking) and the model registry from the warehouse, the champion
from the serving database, and sets each model's test NDCG@10 beside the committed leaderboard's
(`benchmarks/results/leaderboard_<name>.json`, `generative_p5.json`).

With `--select` it materializes that asset selection instead of the whole job (`dagster asset materialize
--select`, the same assets, resources and profile), e.g. one model and everything it reads plus the evaluation
(`--select '*lm_rerank,evaluation_metrics' --label lm_rerank`); the report is then `nightly_<name>_<label>`.

Writes `benchmarks/results/nightly_<name>[_<label>].{json,md}`. Usage:
    python benchmarks/nightly.py [--dataset movielens-100k] [--data ../shared/data/ml-100k] [--profile nightly]
                                 [--budget-minutes 45] [--keep DIR] [--select SELECTION --label LABEL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.registry import SKIPPED_MODELS
from lmrec_assets.warehouse import table_exists

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHORT_NAMES = {"movielens-100k": "ml100k"}


def read_instance(dagster_home: Path, models: list[str]) -> tuple[str, dict[str, float], dict[str, dict]]:
    """From the instance's one run: its id and status, {step: seconds} (pipeline_ml100k's event-log reader), and
    {model: outcome, estimated vs measured fit seconds and peak memory} from each model asset's materialization."""
    from dagster import AssetKey, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from pipeline_ml100k import step_seconds  # this folder is on sys.path when a benchmark script runs

    keys = ("outcome", "estimated_fit_seconds", "fit_seconds", "estimated_peak_mib", "peak_rss_mib")
    outcomes = {}
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        (run,) = instance.get_runs()
        steps = step_seconds(instance, run.run_id)
        for model in models:
            event = instance.get_latest_materialization_event(AssetKey(model))
            metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
            if metadata:
                outcomes[model] = {k: getattr(metadata[k], "value", None) for k in keys if k in metadata}
    return f"{run.run_id} ({run.status.value})", steps, outcomes


def retriever_rows(work: Path, registry, test_ndcg: dict[str, float]) -> list[dict]:
    """For each two-stage model of the run (one with a retriever, i.e. lm_rerank): its retriever alone on test and the
    candidates' recall, from the saved artifact, with the evaluation's protocol; the lift is over the model's own
    test NDCG@10 from the evaluation table (`test_ndcg`)."""
    from lmrec_assets.models.data import load_split_data
    from lmrec_assets.models.ranking import evaluate
    from lmrec_assets.models.registry import load_model

    os.environ["LMREC_DATA_DIR"] = str(work)  # the run's data folder (its text-embedding cache), as in the run
    two_stage = [row for row in registry.itertuples() if hasattr(MODELS[row.model][0], "recall_at_n")]
    if not two_stage:
        return []
    with duckdb.connect(str(work / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        data = load_split_data(con)
    rows = []
    for row in two_stage:
        model_name, model = row.model, load_model(row.model, row.artifact_path)
        alone = evaluate(model.retriever, data, "test", ks=(10,)).iloc[0]
        rows.append({"model": model_name, "retriever": model.retriever_name, "blend": model.blend,
                     "retriever_test_ndcg@10": round(float(alone.ndcg), 4), "retriever_test_hr@10": round(float(alone.hr), 4),
                     "lift": float(test_ndcg[model_name] / alone.ndcg - 1), "recall@candidates_test": round(model.recall_at_n(data, "test"), 4)})
    return rows


def leaderboard_ndcg(name: str) -> dict[str, tuple[float, str]]:
    """{model: (test NDCG@10, commit)} from the committed leaderboard and the generative benchmark."""
    board = {}
    path = RESULTS / f"leaderboard_{name}.json"
    if path.exists():
        board = {row["model"]: (row["ndcg@10"], row.get("code", "")) for row in json.loads(path.read_text())}
    generative = RESULTS / "generative_p5.json"
    if name == "ml100k" and generative.exists():
        row = json.loads(generative.read_text())
        row = row.get("quality", row) if isinstance(row, dict) else row
        if isinstance(row, dict) and "ndcg@10" in row:
            board["generative_p5"] = (row["ndcg@10"], row.get("code", ""))
    return board


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--profile", default="nightly")
    parser.add_argument("--budget-minutes", type=float, default=None, help="run budget (default: the profile's)")
    parser.add_argument("--keep", default="", help="data folder to keep (default: a temporary one, removed)")
    parser.add_argument("--report-only", action="store_true", help="only write the report of the run kept in --keep")
    parser.add_argument("--select", default="", help="asset selection to materialize instead of the refresh_all job")
    parser.add_argument("--label", default="", help="report suffix for a --select run")
    args = parser.parse_args()
    if bool(args.select) != bool(args.label):
        parser.error("--select and --label go together")
    name = SHORT_NAMES.get(args.dataset, args.dataset) + (f"_{args.label}" if args.label else "")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lmrec-nightly-"))
    if args.report_only:
        saved = json.loads((work / "run.json").read_text())
        write_report(args, name, work, saved["command"], saved["commit"], saved["exit_code"], saved["total"],
                     saved["peak_rss_mib"])
        return
    if work.exists():
        shutil.rmtree(work)
    (work / "dagster_home").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    env = os.environ | {
        "DAGSTER_HOME": str(work / "dagster_home"), "LMREC_DATA_DIR": str(work), "LMREC_DATASET": args.dataset,
        "LMREC_DATASET_PATH": args.data, "LMREC_PROFILE": args.profile, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore:Function `job_execute_command` is superseded",
    }
    if args.budget_minutes is not None:
        env["LMREC_TRAINING_BUDGET_MINUTES"] = str(args.budget_minutes)
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "lmrec_assets.definitions",
               "-j", "refresh_all"]
    if args.select:
        command = [command[0], "asset", "materialize", "-m", "lmrec_assets.definitions", "--select", args.select]
    commit = subprocess.run(["git", "describe", "--always", "--dirty=+dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env)
    total = time.perf_counter() - started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    (work / "run.json").write_text(json.dumps({"command": command, "commit": commit, "total": total,
                                               "exit_code": completed.returncode, "peak_rss_mib": peak_rss_mib}))
    if completed.returncode != 0:
        print(f"refresh_all failed (exit {completed.returncode}); data kept in {work}", file=sys.stderr)
        sys.exit(completed.returncode)
    write_report(args, name, work, command, commit, completed.returncode, total, peak_rss_mib)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def write_report(args, name: str, work: Path, command: list[str], commit: str, exit_code: int, total: float,
                 peak_rss_mib: float) -> None:
    run, steps, outcomes = read_instance(work / "dagster_home", list(MODELS))

    with duckdb.connect(str(work / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        metrics = con.execute(
            "select model, split, k, hr, ndcg, mrr, protocol from evaluation.evaluation_metrics "
            "where segment = 'all' and k in (10, 20) order by split, model, k").df()
        registry = con.execute(
            "select model, model_version, params, fit_seconds, artifact_path, created_at from models.model_registry "
            "qualify row_number() over (partition by model order by created_at desc) = 1").df()
        skipped = (con.execute(f"select model, reason from {SKIPPED_MODELS} order by model").df()
                   if table_exists(con, SKIPPED_MODELS) else None)
    serving = work / "serving" / "lmrec_serving.duckdb"
    champion = []  # a --select run may not publish
    if serving.exists():
        with duckdb.connect(str(serving), read_only=True) as con:
            champion = con.execute("select * from champion").df().to_dict(orient="records")

    board = leaderboard_ndcg(name.removesuffix(f"_{args.label}") if args.label else name)
    tests = metrics[(metrics.split == "test") & (metrics.k == 10)]
    two_stage = retriever_rows(work, registry, dict(zip(tests.model, tests.ndcg)))
    rows = []
    for model in sorted(set(metrics.model)):
        test = metrics[(metrics.model == model) & (metrics.split == "test")].set_index("k")
        valid = metrics[(metrics.model == model) & (metrics.split == "valid")].set_index("k")
        fit = registry[registry.model == model]
        reference, code = board.get(model, (None, ""))
        rows.append({
            "model": model,
            "test_ndcg@10": round(float(test.ndcg[10]), 4), "test_hr@10": round(float(test.hr[10]), 4),
            "test_ndcg@20": round(float(test.ndcg[20]), 4),
            "valid_ndcg@10": round(float(valid.ndcg[10]), 4) if 10 in valid.index else None,
            "leaderboard_ndcg@10": None if reference is None else round(reference, 4), "leaderboard_code": code,
            "step_seconds": round(steps.get(model, float("nan")), 1),
            "fit_seconds": round(float(fit.fit_seconds.iloc[0]), 1) if len(fit) else None,
            "params": json.loads(fit.params.iloc[0]) if len(fit) and isinstance(fit.params.iloc[0], str) else None,
        })
    report = {
        "two_stage": two_stage,
        "dataset": args.dataset, "profile": args.profile, "budget_minutes": args.budget_minutes, "commit": commit,
        "select": args.select or "refresh_all",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "command": " ".join(command), "run": run, "exit_code": exit_code,
        "protocol": metrics.protocol.iloc[0], "total_seconds": round(total, 1), "peak_rss_mib": round(peak_rss_mib),
        "step_seconds": {k: round(v, 1) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
        "models": rows, "champion": champion, "model_outcomes": outcomes,
        "skipped": [] if skipped is None else skipped.to_dict(orient="records"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"nightly_{name}.json").write_text(json.dumps(report, indent=2, default=str))

    title = ("Nightly refresh" if not args.select else f"Nightly profile, asset selection `{args.select}`")
    notes = RESULTS / f"nightly_{name}_notes.md"  # the hand-written reading, kept across re-runs
    budget = ("the profile's default" if args.budget_minutes is None else f"{args.budget_minutes:g} min"
              if args.budget_minutes > 0 else "none, every model trains its full QUALITY clock")
    lines = [
        f"# {title}: {args.dataset}, profile `{args.profile}`",
        "",
        *([notes.read_text().strip(), ""] if notes.exists() else []),
        f"Measured {report['measured_at']} at commit {commit} on {report['machine']}. Command: `LMREC_DATASET="
        f"{args.dataset} LMREC_PROFILE={args.profile} {' '.join(command[1:])}` (run budget: {budget}), a fresh data "
        f"folder and instance. Exit code {exit_code}; run {run}.",
        "",
        f"Protocol: {report['protocol']}. Total wall time **{report['total_seconds'] / 60:.1f} min**; peak RSS "
        f"{report['peak_rss_mib']} MiB (the largest step process).",
        "",
        "| model | test NDCG@10 | leaderboard NDCG@10 (commit) | test HR@10 | valid NDCG@10 | step s | fit s |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['model']} | {r['test_ndcg@10']:.4f} | "
          + (f"{r['leaderboard_ndcg@10']:.4f} ({r['leaderboard_code']})" if r["leaderboard_ndcg@10"] is not None
             else "–")
          + f" | {r['test_hr@10']:.4f} | {r['valid_ndcg@10']} | {r['step_seconds']} | {r['fit_seconds']} |"
          for r in sorted(rows, key=lambda r: -r["test_ndcg@10"])],
        "",
        *[f"Two-stage {r['model']}: retriever {r['retriever']} (chosen on valid), test NDCG@10 {r['retriever_test_ndcg@10']}"
          f" / HR@10 {r['retriever_test_hr@10']}, so {r['model']} is {r['lift']:+.1%} over it; candidates' recall on "
          f"test {r['recall@candidates_test']}, blend a = {r['blend']}" for r in two_stage],
        "",
        "Champion: " + ("; ".join(f"{c.get('model')} ({c.get('reason', '')})" for c in champion)
                        or "none published (the selection does not include the champion)"),
        "",
        "Skipped (budgets that follow the data): " + ("; ".join(f"{r['model']} ({r['reason']})" for r in report["skipped"])
                                                       or "none"),
        "",
        "## Estimated vs measured (models/costs.py)",
        "",
        "| model | estimated fit s | fit s | estimated peak MiB | peak RSS MiB (step process) |",
        "|---|---|---|---|---|",
        *[f"| {m} | {o.get('estimated_fit_seconds', '–')} | {o.get('fit_seconds', '–')} | "
          f"{o.get('estimated_peak_mib', '–')} | {o.get('peak_rss_mib', '–')} |" for m, o in outcomes.items()],
        "",
        "## Wall time per step (seconds)",
        "",
        "| step | seconds |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["step_seconds"].items()],
    ]
    (RESULTS / f"nightly_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
