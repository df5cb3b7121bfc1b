"""One tiny end-to-end run of every experiment asset (real dbt, DuckDB, Dagster, real training steps) on two
differently-seeded demo data sets standing in for two domains (profile `tiny`: demo_a seed 7, demo_b seed 11)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster import DagsterInstance, materialize

from lmrec_assets.experiments.assets import experiment_assets
from lmrec_assets.experiments.results import RESULTS_TABLE
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource


def test_every_experiment_runs_on_the_tiny_profile(tmp_path: Path, dbt_manifest: Path) -> None:
    warehouse = tmp_path / "warehouse" / "lmrec.duckdb"
    result = materialize(
        experiment_assets,
        resources={"warehouse": WarehouseResource(path=str(warehouse)), "artifacts": ArtifactStoreResource(data_dir=str(tmp_path))},
        run_config={"ops": {a.key.to_user_string(): {"config": {"profile": "tiny"}} for a in experiment_assets}},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(f"select * from {RESULTS_TABLE}").df()
    assert set(rows["experiment"]) == {"data_efficiency", "sparsity_buckets", "cross_domain_transfer", "adaptation_efficiency"}
    assert (rows["profile"] == "tiny").all() and rows["protocol"].str.contains("full ranking").all()
    ndcg = rows[rows["metric"].str.startswith("ndcg@10")]["value"]
    assert ndcg.between(0, 1).all()

    efficiency = rows[(rows["experiment"] == "data_efficiency") & (rows["metric"] == "ndcg@10")]
    assert set(efficiency["model"]) == {"ease", "sasrec", "hybrid", "zero_shot", "lora", "rerank"}
    assert set(efficiency["fraction"]) == {0.25, 1.0}
    assert efficiency["n_users"].nunique() == 1  # the same test users at every fraction, for every model

    buckets = rows[(rows["experiment"] == "sparsity_buckets") & (rows["metric"] == "ndcg@10")]
    assert set(buckets["model"]) == {"ease", "sasrec", "hybrid", "zero_shot", "lora", "rerank"}
    assert buckets["setting"].str.startswith("history_length=").any() and (buckets["setting"] == "all=all").any()
    assert buckets["setting"].str.startswith("target_popularity=").any()

    transfer = rows[rows["experiment"] == "cross_domain_transfer"]
    assert set(transfer["setting"]) == {f"{direction} {setting}" for direction in ("demo_a->demo_b", "demo_b->demo_a")
                                        for setting in ("zero-shot", "few-shot")}
    assert set(transfer[transfer["setting"].str.startswith("demo_b->")]["model"]) == {"prompt_tuning"}
    assert (transfer["metric"] == "transfer_gain").any()
    assert (transfer[transfer["dataset"] == "demo_b"]["n_users"] == 30).all()  # demo_b: its 30-user sample

    cost = rows[rows["experiment"] == "adaptation_efficiency"].pivot_table(index="model", columns="metric", values="value")
    assert set(cost.index) == {"lora", "prompt_tuning"}
    assert (cost["trainable_parameters"] > 0).all() and (cost["peak_rss_mib"] > 0).all()
    assert cost.loc["prompt_tuning", "trainable_parameters"] < cost.loc["lora", "trainable_parameters"]
    for name in ("data_efficiency", "sparsity_buckets", "cross_domain_transfer", "adaptation_efficiency"):
        assert (tmp_path / "reports" / "experiments" / "tiny" / f"{name}.png").stat().st_size > 1000
        metadata = result.asset_materializations_for_node(name)[0].metadata
        assert metadata["plot"].value.startswith("![")
