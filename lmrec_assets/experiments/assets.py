"""The experiments group: four assets that measure the seed's claims about language models (data efficiency,
sparsity, cross-domain transfer, adaptation cost). Each writes long-format rows to `experiments.experiment_results`
and a plot into its metadata. They are not part of the nightly job or `make demo` (heavy; run on demand from the UI
or `python benchmarks/experiments.py`). Config `profile` picks the grid (see `profiles.py`).

Every number comes from `models.ranking.evaluate` on the test split (full ranking, seen items masked); models
select on valid only. Domains are ingested and split by the real pipeline into their own warehouses
(`<data dir>/experiments/domains/<name>/`); the results go to the pipeline's warehouse.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from lmrec_assets.experiments.domains import prepare_domain
from lmrec_assets.experiments.profiles import DEFAULT_PROFILE, ID, LM, TEXT_ID, Profile, get_profile
from lmrec_assets.experiments.results import (
    image_markdown, long_rows, plot_buckets, plot_data_efficiency, plot_pareto, plot_transfer, write_results,
)
from lmrec_assets.experiments.runs import (
    bucket_metrics, build, fit, fit_and_measure, held_out_metrics, isolated, marginals, model_class, save,
)
from lmrec_assets.experiments.sampling import evaluation_sample, fraction_split, training_users
from lmrec_assets.experiments.transfer import on_catalogue, warm_started
from lmrec_assets.models.base import SplitData
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata

GROUP = "experiments"
EVAL_SAMPLE_SEED = 0  # the evaluation-user sample of a large domain is the same for every experiment and seed


class ExperimentConfig(Config):
    profile: str = DEFAULT_PROFILE  # standard | full | tiny (see lmrec_assets/experiments/profiles.py)


def _root(artifacts: ArtifactStoreResource) -> Path:
    return Path(artifacts.data_dir) / "experiments"


def _domain(profile: Profile, name: str, artifacts: ArtifactStoreResource) -> SplitData:
    spec = profile.domains[name]
    return evaluation_sample(prepare_domain(spec, _root(artifacts) / "domains"), spec.eval_users, EVAL_SAMPLE_SEED)


def _report_path(artifacts: ArtifactStoreResource, profile: Profile, name: str) -> Path:
    return artifacts.reports_dir / "experiments" / profile.name / name


def _finish(context: AssetExecutionContext, warehouse: WarehouseResource, experiment: str, profile: Profile,
            records: list[dict], metadata: dict) -> MaterializeResult:
    frame = long_rows(experiment, profile.name, context.run_id, records)
    with warehouse.connect() as con:
        write_results(con, frame)
    return MaterializeResult(metadata={**frame_metadata(frame), "profile": profile.name, **metadata})


def _asset(description: str, **kwargs):
    return asset(group_name=GROUP, kinds={"python", "pytorch"}, owners=["team:ml"], pool=WAREHOUSE_POOL,
                 description=description, **kwargs)


def _manifest_path(artifacts: ArtifactStoreResource, profile: Profile) -> Path:
    return _root(artifacts) / "models" / "data_efficiency" / profile.name / "manifest.json"


@_asset("NDCG@10 against the share of training users (same valid/test users, same seeds) for ID-based and "
        "LM-based models; saves the models trained on `bucket_fraction` for sparsity_buckets.")
def data_efficiency(context: AssetExecutionContext, config: ExperimentConfig, warehouse: WarehouseResource,
                    artifacts: ArtifactStoreResource) -> MaterializeResult:
    profile = get_profile(config.profile)
    records, saved = [], []
    for dataset in profile.data_efficiency_domains:
        data = _domain(profile, dataset, artifacts)
        for seed in profile.seeds:
            for fraction in profile.fractions:
                subset = fraction_split(data, fraction, seed)
                n_train = len(training_users(data, fraction, seed))
                trained = {}  # registry name -> model fitted on this subset (lm_rerank's retrievers)
                for label in profile.data_efficiency_models:
                    setup = profile.models[label]
                    fitted = fit(setup, subset, seed, fitted=trained)
                    trained[setup.registry] = fitted.model
                    test = held_out_metrics(fitted.model, data)
                    context.log.info(f"{dataset} {label} users={fraction:g} seed {seed}: {test}")
                    records.append({"dataset": dataset, "model": label, "family": setup.family,
                                    "setting": f"training users={fraction:g}", "fraction": fraction, "seed": seed,
                                    "n_users": test["n_users"], "ndcg@10": test["ndcg@10"], "hr@10": test["hr@10"],
                                    "valid_ndcg@10": fitted.report.valid_ndcg_at_10,
                                    "fit_seconds": fitted.fit_seconds, "n_training_users": n_train})
                    if fraction == profile.bucket_fraction:
                        path = _root(artifacts) / "models" / "data_efficiency" / profile.name / dataset / label / f"seed={seed}"
                        saved.append({"dataset": dataset, "model": label, "seed": seed,
                                      "path": str(save(fitted.model, path))})
    manifest = _manifest_path(artifacts, profile)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"fraction": profile.bucket_fraction, "models": saved}, indent=2))

    summary = data_efficiency_summary(pd.DataFrame(records))
    plot = plot_data_efficiency(summary, _report_path(artifacts, profile, "data_efficiency.png"))
    verdict = lm_vs_id(summary)
    return _finish(context, warehouse, "data_efficiency", profile, records, {
        "plot": image_markdown(plot, summary),
        "lm_vs_id": MetadataValue.md(verdict.to_markdown(index=False, floatfmt=".3f")),
        "plot_path": MetadataValue.path(str(plot)),
    })


def data_efficiency_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (dataset, model, family, fraction)."""
    return (frame.groupby(["dataset", "model", "family", "fraction"], as_index=False)[["ndcg@10", "hr@10", "fit_seconds"]]
            .mean().sort_values(["dataset", "fraction", "ndcg@10"], ascending=[True, True, False]))


def lm_vs_id(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and fraction: the best LM-based and the best ID-based model and the ratio of their NDCG@10. The
    text+ID hybrid counts as LM-based: its item vectors start from the LM's reading of the item text."""
    rows = []
    for (dataset, fraction), group in summary.groupby(["dataset", "fraction"]):
        lm, ids = group[group["family"].isin([LM, TEXT_ID])], group[group["family"] == ID]
        if lm.empty or ids.empty:
            continue
        best_lm, best_id = lm.loc[lm["ndcg@10"].idxmax()], ids.loc[ids["ndcg@10"].idxmax()]
        ratio = best_lm["ndcg@10"] / best_id["ndcg@10"] if best_id["ndcg@10"] > 0 else np.nan
        rows.append({"dataset": dataset, "fraction": fraction, "best_lm": best_lm["model"],
                     "best_lm_ndcg@10": best_lm["ndcg@10"], "best_id": best_id["model"],
                     "best_id_ndcg@10": best_id["ndcg@10"], "lm/id": ratio,
                     "lm_curve": "above" if ratio > 1 else "below"})
    return pd.DataFrame(rows)


@_asset("Test NDCG@10 per user-history-length bucket (≤5, 6-20, 21-50, >50 train interactions) and per popularity "
        "bucket of the target item (head/torso/tail by share of train interactions), for every model that "
        "data_efficiency trained on the profile's bucket fraction (evaluation only).", deps=["data_efficiency"])
def sparsity_buckets(context: AssetExecutionContext, config: ExperimentConfig, warehouse: WarehouseResource,
                     artifacts: ArtifactStoreResource) -> MaterializeResult:
    profile = get_profile(config.profile)
    manifest = json.loads(_manifest_path(artifacts, profile).read_text())
    records, frames, domains = [], [], {}
    for entry in manifest["models"]:
        setup = profile.models[entry["model"]]
        if entry["dataset"] not in domains:
            domains[entry["dataset"]] = _domain(profile, entry["dataset"], artifacts)
        data = domains[entry["dataset"]]
        model = model_class(setup).load(Path(entry["path"]))
        marg = marginals(bucket_metrics(model, data)).assign(dataset=entry["dataset"], model=entry["model"],
                                                             seed=entry["seed"])
        frames.append(marg)
        for row in marg.to_dict("records"):
            records.append({"dataset": row["dataset"], "model": row["model"], "family": setup.family,
                            "setting": f"{row['dimension']}={row['bucket']}", "fraction": manifest["fraction"],
                            "seed": row["seed"], "n_users": row["n_users"], "ndcg@10": row["ndcg@10"],
                            "hr@10": row["hr@10"]})
        context.log.info(f"{entry['dataset']} {entry['model']}: {marg[['dimension', 'bucket', 'n_users', 'ndcg@10']].to_dict('records')}")
    table = pd.concat(frames, ignore_index=True).groupby(["dataset", "dimension", "bucket", "model"], as_index=False)[
        ["n_users", "ndcg@10", "hr@10"]].mean()
    plot = plot_buckets(table, _report_path(artifacts, profile, "sparsity_buckets.png"))
    return _finish(context, warehouse, "sparsity_buckets", profile, records, {
        "plot": image_markdown(plot, table.pivot_table(index=["dataset", "dimension", "bucket"], columns="model",
                                                       values="ndcg@10").reset_index()),
        "plot_path": MetadataValue.path(str(plot)),
    })


@_asset("Cross-domain transfer of the adapted LM models: trained on the source domain, evaluated on the target "
        "(a) zero-shot against the un-adapted LM, (b) after few-shot adaptation on a share of target users against the "
        "same model trained on those users alone with the same budget. Transfer gain = ratio of NDCG@10.")
def cross_domain_transfer(context: AssetExecutionContext, config: ExperimentConfig, warehouse: WarehouseResource,
                          artifacts: ArtifactStoreResource) -> MaterializeResult:
    profile = get_profile(config.profile)
    records = []
    for transfer in profile.transfers:
        source, target = _domain(profile, transfer.source, artifacts), _domain(profile, transfer.target, artifacts)
        direction = f"{transfer.source}->{transfer.target}"
        for label in transfer.models:
            setup, cls = profile.models[label], model_class(profile.models[label])
            for seed in profile.seeds:
                trained = fit(setup, source, seed)
                source_dir = save(trained.model, _root(artifacts) / "models" / "transfer" / profile.name / direction / label / f"seed={seed}")
                context.log.info(f"{direction} {label}: source valid NDCG@10 {trained.report.valid_ndcg_at_10}")
                untrained = build(setup, seed)
                baseline = held_out_metrics(on_catalogue(untrained, target, untrained.build_encoder()), target)
                carried = held_out_metrics(on_catalogue(trained.model, target), target)
                records.append(_transfer_record(target, direction, label, setup.family, "zero-shot", 0.0, seed,
                                                baseline, carried, trained.fit_seconds, 0.0))
                for fraction in transfer.fractions:
                    subset = fraction_split(target, fraction, seed)
                    alone = fit(setup, subset, seed)
                    warm = fit(setup, subset, seed, cls=warm_started(cls, source_dir))
                    records.append(_transfer_record(
                        target, direction, label, setup.family, "few-shot", fraction, seed,
                        held_out_metrics(alone.model, target), held_out_metrics(warm.model, target),
                        alone.fit_seconds, warm.fit_seconds))
                    context.log.info(f"{direction} {label} few-shot {fraction:g}: {records[-1]}")
    summary = transfer_summary(pd.DataFrame(records))
    plot = plot_transfer(summary, _report_path(artifacts, profile, "cross_domain_transfer.png"))
    return _finish(context, warehouse, "cross_domain_transfer", profile, records, {
        "plot": image_markdown(plot, summary), "plot_path": MetadataValue.path(str(plot)),
    })


def _transfer_record(target: SplitData, direction: str, model: str, family: str, setting: str, fraction: float,
                     seed: int, alone: dict, carried: dict, alone_seconds: float, carried_seconds: float) -> dict:
    return {"dataset": direction.split("->")[1], "model": model, "family": family,
            "setting": f"{direction} {setting}", "fraction": fraction, "seed": seed, "n_users": carried["n_users"],
            "ndcg@10_target_only": alone["ndcg@10"], "ndcg@10_transferred": carried["ndcg@10"],
            "transfer_gain": carried["ndcg@10"] / alone["ndcg@10"] if alone["ndcg@10"] > 0 else None,
            "fit_seconds_target_only": alone_seconds, "fit_seconds_transferred": carried_seconds}


def transfer_summary(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(direction=frame["setting"].str.split(" ").str[0], setting=frame["setting"].str.split(" ").str[1])
    summary = frame.groupby(["direction", "model", "setting", "fraction"], as_index=False)[
        ["ndcg@10_target_only", "ndcg@10_transferred"]].mean()
    summary = summary.rename(columns={"ndcg@10_target_only": "target_only", "ndcg@10_transferred": "transferred"})
    summary["transfer_gain"] = summary["transferred"] / summary["target_only"]
    summary["setting"] = [s if s == "zero-shot" else f"{s} {f:g}" for s, f in zip(summary["setting"], summary["fraction"])]
    return summary


@_asset("Fine-tuning against prompt learning (LoRA, full fine-tuning, soft prompt tuning): trainable parameters, "
        "training wall time, peak RSS (each run in its own process), inference time for all test users and NDCG@10; "
        "table + Pareto plot.")
def adaptation_efficiency(context: AssetExecutionContext, config: ExperimentConfig, warehouse: WarehouseResource,
                          artifacts: ArtifactStoreResource) -> MaterializeResult:
    profile = get_profile(config.profile)
    data = _domain(profile, profile.finetune_domain, artifacts)
    records = []
    for seed in profile.seeds:
        for label in profile.finetune_models:
            setup = profile.models[label]
            run = isolated(setup, data, seed) if profile.isolate else fit_and_measure(setup, data, seed)
            context.log.info(f"{label} seed {seed}: {run}")
            records.append({"dataset": profile.finetune_domain, "model": label, "family": setup.family,
                            "setting": "isolated process" if profile.isolate else "in-process",
                            "fraction": 1.0, "seed": seed, **run})
    table = (pd.DataFrame(records).groupby("model", as_index=False)[
        ["trainable_parameters", "fit_seconds", "peak_rss_mib", "inference_seconds", "ndcg@10", "n_users"]].mean()
        .sort_values("ndcg@10", ascending=False))
    plot = plot_pareto(table, _report_path(artifacts, profile, "adaptation_efficiency.png"))
    return _finish(context, warehouse, "adaptation_efficiency", profile, records, {
        "plot": image_markdown(plot, table), "plot_path": MetadataValue.path(str(plot)),
    })


experiment_assets = [data_efficiency, sparsity_buckets, cross_domain_transfer, adaptation_efficiency]
