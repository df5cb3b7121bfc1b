"""The evaluation group: ranking metrics for every model on the valid and test splits (full ranking)."""

import hashlib
from datetime import datetime, timezone

import pandas as pd
from dagster import AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from lmrec_assets.models.ranking import PROTOCOL, evaluate_segments
from lmrec_assets.lineage import record_artifact, reuse_if_unchanged
from lmrec_assets.models.cards import evaluation_section, set_section
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.registry import latest_versions, load_model
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows

CODE_VERSION = "2"  # 2: cold-item segment rows
METRIC_COLUMNS = ["model", "model_version", "run_id", "split", "segment", "k", "hr", "ndcg", "recall", "precision", "mrr",
                  "coverage", "n_users", "protocol", "evaluated_at"]


@asset(
    group_name="evaluation",
    deps=list(MODELS),
    kinds={"duckdb", "python"},
    owners=["team:ml"],
    description=f"HR, NDCG, Recall, Precision, MRR and coverage at K ∈ {{5, 10, 20}} per model and split, for all "
    f"users and for users whose held-out item is cold (no train interactions) → evaluation.evaluation_metrics. "
    f"Protocol: {PROTOCOL}.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
)
def evaluation_metrics(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(MODELS))
        version = hashlib.sha256(
            f"{CODE_VERSION}|{sorted(zip(registry['model'], registry['model_version']))}".encode()
        ).hexdigest()[:16]
        if reused := reuse_if_unchanged(context, con, "evaluation_metrics", version, "same model versions"):
            return reused
        data = load_split_data(con)
    evaluated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frames = []
    for row in registry.itertuples():
        model = load_model(row.model, row.artifact_path)
        for split in ("valid", "test"):
            metrics = evaluate_segments(model, data, split)
            frames.append(metrics.assign(
                model=row.model, model_version=row.model_version, run_id=context.run_id, split=split,
                protocol=PROTOCOL, evaluated_at=evaluated_at,
            ))
    table = pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]
    cards = {  # each model version's card gets its metrics (rewritten identically if this run is repeated)
        row.model: set_section(row.artifact_path, "evaluation", evaluation_section(table[table.model == row.model]))
        for row in registry.itertuples()
    }
    cards = {model: card for model, card in cards.items() if card is not None}

    with warehouse.connect() as con:
        con.begin()
        for row in registry.itertuples():
            replace_rows(con, "evaluation.evaluation_metrics", table[table.model == row.model],
                         where="model = ? and model_version = ?", params=(row.model, row.model_version))
        record_artifact(
            con, asset_key="evaluation_metrics", version=version, run_id=context.run_id,
            code_version=CODE_VERSION, parent_keys=registry["model"],
            details={"model_versions": dict(zip(registry["model"], registry["model_version"])), "protocol": PROTOCOL,
                     "model_card_sha256": {model: sha for model, (_, sha) in cards.items()}},
        )
        con.commit()

    leaderboard = table[(table.split == "test") & (table.segment == "all")].pivot_table(
        index="model", columns="k", values=["hr", "ndcg"]
    )
    leaderboard.columns = [f"{metric.upper()}@{k}" for metric, k in leaderboard.columns]
    return MaterializeResult(data_version=DataVersion(version), metadata={
        **frame_metadata(table, preview_rows=0),
        "outcome": "computed",
        "test_leaderboard": MetadataValue.md(leaderboard.round(4).reset_index().to_markdown(index=False)),
        "metrics": MetadataValue.md(table.drop(columns=["run_id", "protocol", "evaluated_at"]).round(4).to_markdown(index=False)),
        "protocol": PROTOCOL,
        **{f"model_card_{model}": MetadataValue.md(text) for model, (text, _) in cards.items()},
    })
