"""Sparsity and transfer experiments (issue 7): run the `experiments` asset group with a profile, then write the
results to benchmarks/results/experiments_<profile>.{md,json} and the plots to benchmarks/results/experiments/.

Usage:
  python benchmarks/experiments.py                       # profile "standard" (what is committed), every experiment
  python benchmarks/experiments.py --profile full        # the same grid, 3 seeds, longer budgets (hours on 2 cores)
  python benchmarks/experiments.py --experiments data_efficiency sparsity_buckets   # a chunk
  python benchmarks/experiments.py --report-only         # rewrite the md/json from the warehouse
The same assets run from the Dagster UI (group "experiments", config `profile`). Real data is read from
../shared/data (LMREC_SHARED_DATA); each domain is ingested and split by the pipeline under data/bench/experiments/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = ROOT / "data" / "bench" / "experiments"
RESULTS = ROOT / "benchmarks" / "results"
ORDER = ["data_efficiency", "sparsity_buckets", "cross_domain_transfer", "adaptation_efficiency"]


def run(profile: str, experiments: list[str]) -> dict[str, float]:
    import torch
    from dagster import DagsterInstance, materialize

    from lmrec_assets.experiments.assets import experiment_assets
    from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource

    torch.set_num_threads(2)
    resources = {"warehouse": WarehouseResource(path=str(DATA_DIR / "warehouse" / "lmrec.duckdb")),
                 "artifacts": ArtifactStoreResource(data_dir=str(DATA_DIR))}
    seconds = {}
    for name in experiments:  # one run each, so a chunk can be re-run alone and each wall time is its own
        started = time.perf_counter()
        print(f"[experiments] {name} (profile {profile}) ...", flush=True)
        materialize(experiment_assets, selection=[name], resources=resources, instance=DagsterInstance.ephemeral(),
                    run_config={"ops": {name: {"config": {"profile": profile}}}}, raise_on_error=True)
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"[experiments] {name}: {seconds[name]} s", flush=True)
    return seconds


def latest_results(profile: str) -> pd.DataFrame:
    """The latest run of each experiment for this profile."""
    import duckdb

    with duckdb.connect(str(DATA_DIR / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        return con.execute(
            """
            select * from experiments.experiment_results r
            where profile = ? and run_id = (select arg_max(run_id, created_at) from experiments.experiment_results
                                            where experiment = r.experiment and profile = r.profile)
            """, [profile]).df()


def report(profile: str, seconds: dict[str, float]) -> None:
    from lmrec_assets.experiments.assets import data_efficiency_summary, lm_vs_id, transfer_summary
    from lmrec_assets.experiments.profiles import get_profile
    from lmrec_assets.experiments.results import plot_buckets, plot_data_efficiency, plot_pareto, plot_transfer

    rows = latest_results(profile)
    timings_path = RESULTS / f"experiments_{profile}_timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    timings.update(seconds)
    timings_path.write_text(json.dumps(timings, indent=2))
    (RESULTS / "experiments").mkdir(parents=True, exist_ok=True)
    (RESULTS / f"experiments_{profile}.json").write_text(
        rows.assign(created_at=rows["created_at"].astype(str)).to_json(orient="records", indent=1))
    plots = RESULTS / "experiments"  # redrawn here from the table rows, so plots and numbers always agree

    def wide(experiment: str) -> pd.DataFrame:
        part = rows[rows["experiment"] == experiment]
        index = ["dataset", "model", "family", "setting", "fraction", "seed", "n_users"]
        # unstack keeps only the (row, metric) combinations that exist (pivot_table would cross every index level)
        frame = part.set_index([*index, "metric"])["value"].unstack("metric").reset_index()
        counts = [c for c in ("trainable_parameters", "steps", "best_epoch", "n_training_users") if c in frame]
        return frame.astype({c: "Int64" for c in counts})

    lines = [f"# Experiments: sparsity and transfer (profile `{profile}`)", "",
             "Protocol: per-user leave-one-out by time (Toys: position in the sequence), full ranking over every item of "
             "the domain's catalogue, seen items masked, test split; models select on valid only. "
             f"Settings: profile `{get_profile(profile).name}` in `lmrec_assets/experiments/profiles.py`. "
             "Wall time per experiment on the shared 2-core machine: "
             + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".", ""]
    present = set(rows["experiment"])
    if "data_efficiency" in present:
        frame = wide("data_efficiency")
        summary = data_efficiency_summary(frame)
        plot_data_efficiency(summary, plots / f"{profile}_data_efficiency.png")
        lines += ["## 1. Data efficiency", "", f"![data efficiency](experiments/{profile}_data_efficiency.png)", "",
                  summary.to_markdown(index=False, floatfmt=".4f"), "",
                  "Best LM-based vs best ID-based model:", "", lm_vs_id(summary).to_markdown(index=False, floatfmt=".3f"), ""]
    if "sparsity_buckets" in present:
        frame = wide("sparsity_buckets")
        table = frame.pivot_table(index=["dataset", "setting"], columns="model", values="ndcg@10").reset_index()
        users = frame.groupby(["dataset", "setting"])["n_users"].first().reset_index()
        buckets = frame.assign(dimension=frame["setting"].str.split("=").str[0], bucket=frame["setting"].str.split("=").str[1])
        plot_buckets(buckets.groupby(["dataset", "dimension", "bucket", "model"], as_index=False)[["n_users", "ndcg@10"]].mean(),
                     plots / f"{profile}_sparsity_buckets.png")
        lines += ["## 2. Sparsity buckets (test NDCG@10)", "", f"![buckets](experiments/{profile}_sparsity_buckets.png)", "",
                  table.merge(users).to_markdown(index=False, floatfmt=".4f"), ""]
    if "cross_domain_transfer" in present:
        summary = transfer_summary(wide("cross_domain_transfer"))
        plot_transfer(summary, plots / f"{profile}_cross_domain_transfer.png")
        lines += ["## 3. Cross-domain transfer", "", f"![transfer](experiments/{profile}_cross_domain_transfer.png)", "",
                  summary.to_markdown(index=False, floatfmt=".4f"), ""]
    if "adaptation_efficiency" in present:
        frame = wide("adaptation_efficiency").sort_values("ndcg@10", ascending=False)
        plot_pareto(frame, plots / f"{profile}_adaptation_efficiency.png")
        columns = ["model", "trainable_parameters", "fit_seconds", "peak_rss_mib", "inference_seconds", "n_users",
                   "valid_ndcg@10", "ndcg@10", "hr@10", "steps", "best_epoch"]
        lines += ["## 4. Fine-tuning vs prompt learning", "", f"![pareto](experiments/{profile}_adaptation_efficiency.png)", "",
                  frame[[c for c in columns if c in frame]].to_markdown(index=False, floatfmt=".4f"), ""]
    notes = RESULTS / f"experiments_{profile}_notes.md"
    if notes.exists():  # the hand-written reading of the numbers (what was cut, which targets were met)
        lines = lines[:4] + [notes.read_text(), ""] + lines[4:]
    (RESULTS / f"experiments_{profile}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    from lmrec_assets.experiments.profiles import DEFAULT_PROFILE

    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--experiments", nargs="+", default=ORDER, choices=ORDER)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    seconds = {} if args.report_only else run(args.profile, args.experiments)
    report(args.profile, seconds)


if __name__ == "__main__":
    main()
