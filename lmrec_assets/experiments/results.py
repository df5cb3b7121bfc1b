"""The `experiments.experiment_results` table (long format, one row per measured number) and the plots."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import MetadataValue

from lmrec_assets.models.ranking import PROTOCOL
from lmrec_assets.warehouse import replace_rows

RESULTS_TABLE = "experiments.experiment_results"
COLUMNS = ["experiment", "profile", "dataset", "model", "family", "setting", "fraction", "metric", "value", "n_users",
           "seed", "protocol", "run_id", "created_at"]


def long_rows(experiment: str, profile: str, run_id: str, records: list[dict]) -> pd.DataFrame:
    """Records (dataset, model, family, setting, fraction, seed, n_users and metric -> value pairs) to table rows."""
    keys = {"dataset", "model", "family", "setting", "fraction", "seed", "n_users"}
    created = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [
        {**{k: record.get(k) for k in keys}, "metric": metric, "value": float(value)}
        for record in records for metric, value in record.items() if metric not in keys and value is not None
    ]
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c in keys | {"metric", "value"}])
    frame.insert(0, "experiment", experiment)
    frame.insert(1, "profile", profile)
    frame["protocol"] = PROTOCOL + "; test split"
    frame["run_id"] = run_id
    frame["created_at"] = created
    frame["fraction"] = frame["fraction"].astype(float)
    frame["n_users"] = frame["n_users"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame[COLUMNS]


def write_results(con, frame: pd.DataFrame) -> None:
    """Append this run's rows (a re-run of the same run id replaces its own rows), in one transaction."""
    con.begin()
    replace_rows(con, RESULTS_TABLE, frame, where="experiment = ? and run_id = ?",
                 params=(frame["experiment"].iloc[0], frame["run_id"].iloc[0]))
    con.commit()


def image_markdown(path: Path, table: pd.DataFrame | None = None) -> MetadataValue:
    """The PNG inline (the UI renders data URIs) and, below it, the numbers as a table."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    text = f"![{path.stem}](data:image/png;base64,{encoded})"
    if table is not None:
        text += "\n\n" + table.to_markdown(index=False, floatfmt=".4f")
    return MetadataValue.md(text)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_data_efficiency(summary: pd.DataFrame, path: Path) -> Path:
    """NDCG@10 against the share of training users (log x), one line per model, one panel per dataset; LM-based
    models solid, ID-based dashed."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for (model, family), group in summary[summary["dataset"] == dataset].groupby(["model", "family"]):
            group = group.sort_values("fraction")
            ax.plot(group["fraction"], group["ndcg@10"], marker="o", label=f"{model} ({family})",
                    linestyle="--" if family == "id" else "-")
        ax.set_xscale("log")
        ax.set_xlabel("share of training users")
        ax.set_ylabel("test NDCG@10")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_buckets(marg: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: NDCG@10 per bucket and model, one panel per (dataset, dimension)."""
    plt = _pyplot()
    panels = marg[marg["dimension"] != "all"][["dataset", "dimension"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (dataset, dimension) in zip(axes[0], panels):
        part = marg[(marg["dataset"] == dataset) & (marg["dimension"] == dimension)]
        order = [b for b in ["<=5", "6-20", "21-50", ">50", "head", "torso", "tail"] if b in set(part["bucket"])]
        table = part.pivot(index="bucket", columns="model", values="ndcg@10").reindex(order)
        table.plot.bar(ax=ax, rot=0)
        counts = part.groupby("bucket")["n_users"].first().reindex(order)
        ax.set_xticklabels([f"{b}\n(n={int(n)})" for b, n in counts.items()])
        ax.set_title(f"{dataset}: {dimension.replace('_', ' ')}")
        ax.set_ylabel("test NDCG@10")
        ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_transfer(summary: pd.DataFrame, path: Path) -> Path:
    """Bars: NDCG@10 with and without the source domain, per (direction, model, setting)."""
    plt = _pyplot()
    labels = [f"{r.direction}\n{r.model} {r.setting}" for r in summary.itertuples()]
    x = range(len(summary))
    fig, ax = plt.subplots(figsize=(max(5, 2.2 * len(summary)), 4))
    ax.bar([i - 0.2 for i in x], summary["target_only"], width=0.4,
           label="target only (zero-shot: the un-adapted LM)")
    ax.bar([i + 0.2 for i in x], summary["transferred"], width=0.4, label="adapted on source first")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("test NDCG@10 on the target")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_pareto(table: pd.DataFrame, path: Path) -> Path:
    """NDCG@10 against two costs, trainable parameters (log x) and peak RSS, one point per model; the Pareto front
    (no other model is both cheaper and better) is joined by a dashed line. Training time is not a panel: every run
    has the same wall-time budget, so it says little (it is in the table)."""
    plt = _pyplot()
    costs = [("trainable_parameters", "trainable parameters (log)"), ("peak_rss_mib", "peak RSS (MiB)")]
    fig, axes = plt.subplots(1, len(costs), figsize=(5.5 * len(costs), 4), squeeze=False)
    for ax, (cost, label) in zip(axes[0], costs):
        ax.scatter(table[cost], table["ndcg@10"], s=60)
        for _, row in table.iterrows():
            ax.annotate(f" {row['model']}", (row[cost], row["ndcg@10"]), fontsize=8)
        front = pareto_front(table, cost, "ndcg@10")
        ax.plot(front[cost], front["ndcg@10"], linestyle="--", color="grey")
        if cost == "trainable_parameters":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test NDCG@10")
        ax.margins(x=0.25, y=0.15)
    return _save(fig, plt, path)


def pareto_front(table: pd.DataFrame, cost: str, quality: str) -> pd.DataFrame:
    """Rows not dominated by another row with lower-or-equal cost and higher-or-equal quality (one strictly)."""
    ordered = table.sort_values([cost, quality], ascending=[True, False])
    best, keep = float("-inf"), []
    for index, row in ordered.iterrows():
        if row[quality] > best:
            keep.append(index)
            best = row[quality]
    return ordered.loc[keep]


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
