"""The models group: one asset per model, all built by one factory so every model is trained, versioned, saved and
registered the same way. A new paradigm is a new file in `models/` plus one entry in `MODELS`."""

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, DataVersion, MaterializeResult, MetadataValue, asset

from lmrec_assets.lineage import record_artifact, reuse
from lmrec_assets.memory import peak_rss_mib
from lmrec_assets.models import profiles
from lmrec_assets.models.base import FitReport, ModelParams, Recommender
from lmrec_assets.models.cards import card_path, training_card, write_card
from lmrec_assets.models.costs import NUMPY_BASE_BYTES, Cost, DataSize, fits, memory_budget_bytes
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.ease import EASE
from lmrec_assets.models.generative_p5 import GenerativeP5
from lmrec_assets.models.hybrid import HybridSeq
from lmrec_assets.models.lm_finetune import LMFinetune
from lmrec_assets.models.lm_rerank import LMRerank
from lmrec_assets.models.popularity import Popularity
from lmrec_assets.models.prompt_tuning import LMPromptTuning
from lmrec_assets.models.registry import SKIPPED_MODELS, latest_versions, load_model
from lmrec_assets.models.sasrec import SASRec
from lmrec_assets.models.text import BUNDLED_LM, encoder_precision
from lmrec_assets.models.zero_shot import ZeroShotPrompt
from lmrec_assets.resources import ArtifactStoreResource, DatasetResource, TrainingProfileResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows, table_exists

# name -> (model class, description). The class is also how recommendations/evaluation load a saved artifact.
MODELS: dict[str, tuple[type[Recommender], str]] = {
    "popularity": (Popularity, "Most-popular items on the train split (non-personalised floor)."),
    "ease": (EASE, "EASE closed-form item-item model; L2 strength tuned on the valid split."),
    "sasrec": (SASRec, "SASRec: causal self-attention over item-ID sequences, full-catalogue cross-entropy; "
               "early-stopped on valid NDCG@10."),
    "hybrid_seq": (HybridSeq, "SASRec over ID embedding + MoE adaptor of frozen MiniLM item-text embeddings "
                   "(UniSRec-style); cold items ranked by their text."),
    "zero_shot_prompt": (ZeroShotPrompt, "Zero-shot: the pre-trained LM embeds the user's recent titles through the "
                         "prompt template; items ranked by cosine to their item_text embeddings. No training."),
    "lm_finetune": (LMFinetune, "The prompt-encoding LM fine-tuned on next-item prediction (LoRA on attention "
                    "query/value by default, or full fine-tuning); softmax over the whole catalogue."),
    "lm_prompt_tuning": (LMPromptTuning, "Soft prompt tuning: frozen LM, trainable virtual tokens initialised from the "
                         "template; same next-item objective as lm_finetune."),
    "generative_p5": (GenerativeP5, "P5-style generative recommender: MiniLM warm-started as a seq2seq LM (BERT2BERT, "
                      "LoRA by default) writes the next title; trie-constrained beam search over catalogue titles, "
                      "scored by log P(title | prompt)."),
    "lm_rerank": (LMRerank, "Two-stage: a registered retriever (best of EASE / SASRec / hybrid on valid) proposes "
                  "candidates; the LoRA-adapted LM ranks them from the user's prompt (listwise loss over the "
                  "retriever's hard negatives), blended with the retriever's score (weight chosen on valid)."),
}
SPLIT_DEPS = ["split_train", "split_valid", "split_test", "dim_items", "dim_users"]


def model_version(name: str, code_version: str, config: dict, data_fingerprint: str) -> str:
    """Same code + same config + same training data → same version (what lets a refresh skip unchanged work)."""
    payload = json.dumps([name, code_version, config, data_fingerprint], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def resolve_training(
    name: str, config: ModelParams, training: TrainingProfileResource, dataset_source: str,
    run_config: dict | None = None,
) -> tuple[ModelParams, dict]:
    """The params model `name` trains with in this run (profile, run budget and what the user set in the asset's
    `run_config`: precedence in `models/profiles.py`), and {profile, budget_minutes, budget_share_minutes} for
    metadata, card and lineage."""
    profile = profiles.resolve_profile(training.profile, dataset_source)
    budget = profiles.run_budget(profile, training.budget_minutes)
    share = profiles.budget_shares({n: cls for n, (cls, _) in MODELS.items()}, profile, budget).get(name)
    overrides = profiles.user_set(config, run_config)
    params = profiles.training_params(MODELS[name][0], profile, overrides, budget_share=share)
    # A model that sizes itself to a memory budget (EASE's top-popular variant) gets at most the run's, less the
    # step process's own footprint, unless the user set its budget: a smaller machine then shrinks the fit.
    limit = memory_budget_bytes(training.memory_budget_gb) - NUMPY_BASE_BYTES
    if "memory_budget_bytes" in type(params).model_fields and "memory_budget_bytes" not in overrides:
        if 0 < limit < params.memory_budget_bytes:
            params = params.model_copy(update={"memory_budget_bytes": int(limit)})
    return params, {"profile": profile, "budget_minutes": budget, "budget_share_minutes": share}


def registered(warehouse: WarehouseResource, name: str, version: str) -> str | None:
    """The artifact path of this exact model version if it was trained and saved before, else None."""
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "models.model_registry"):
            return None
        row = con.execute(
            "select artifact_path from models.model_registry where model = ? and model_version = ?", [name, version]
        ).fetchone()
    if row is None or not any(Path(row[0]).glob("*")):
        return None
    return row[0]


def upstream_model_versions(warehouse: WarehouseResource, model_class: type[Recommender]) -> dict[str, tuple[str, str]]:
    """{model: (version, artifact path)} of the registered models this model reads (its `upstream` that are models)."""
    names = [n for n in model_class.upstream if n in MODELS]
    if not names:
        return {}
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "models.model_registry"):
            return {}
        latest = latest_versions(con, names)
    return {row.model: (row.model_version, row.artifact_path) for row in latest.itertuples()}


def skip_reason(name: str, cost: Cost, training: TrainingProfileResource, budget_minutes: float | None,
                upstream_models: dict[str, tuple[str, str]]) -> str | None:
    """Why model `name` cannot train in this run (None: it can): it reads models (lm_rerank's retrievers) and none of
    them is trained, or its estimate exceeds the run's time or memory budget (`models/costs.py`)."""
    reads = [n for n in MODELS[name][0].upstream if n in MODELS]
    if reads and not upstream_models:
        return (f"none of the models {name} reads ({', '.join(reads)}) is trained in this warehouse: they were "
                "skipped or never materialized")
    return fits(cost, budget_minutes, memory_budget_bytes(training.memory_budget_gb))


def skipped_now(warehouse: WarehouseResource, name: str) -> bool:
    with warehouse.connect(read_only=True) as con:
        return table_exists(con, SKIPPED_MODELS) and bool(
            con.execute(f"select count(*) from {SKIPPED_MODELS} where model = ?", [name]).fetchone()[0])


def clear_skip(con, name: str) -> None:
    """The model is served again (trained or re-used): it is no longer skipped."""
    if table_exists(con, SKIPPED_MODELS):
        con.execute(f"delete from {SKIPPED_MODELS} where model = ?", [name])


def skip(context: AssetExecutionContext, warehouse: WarehouseResource, name: str, version: str, fingerprint: str,
         reason: str, cost: Cost, metadata: dict) -> MaterializeResult:
    """Record that `name` was not trained and why; its older versions stop being served (`registry`)."""
    context.log.warning(f"{name}: skipped, not trained: {reason}")
    row = pd.DataFrame([{
        "model": name, "model_version": version, "run_id": context.run_id, "data_fingerprint": fingerprint,
        "reason": reason, "estimated_run_seconds": cost.run_seconds, "estimated_peak_bytes": cost.peak_bytes,
        "skipped_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }])
    with warehouse.connect() as con:
        con.begin()
        replace_rows(con, SKIPPED_MODELS, row, where="model = ?", params=(name,))
        con.commit()
    return MaterializeResult(data_version=DataVersion(f"skipped-{version}"), metadata={
        "outcome": f"skipped: {reason}", "model_version": version, **metadata, **cost.metadata(),
    })


def build_model_asset(name: str) -> AssetsDefinition:
    model_class, description = MODELS[name]

    @asset(
        name=name,
        group_name="models",
        deps=[*SPLIT_DEPS, *model_class.upstream],
        kinds={"python", model_class.kind},
        owners=["team:ml"],
        description=description,
        code_version=model_class.code_version,
        pool=WAREHOUSE_POOL,
    )
    def _model_asset(
        context: AssetExecutionContext, config: model_class.Params, warehouse: WarehouseResource,
        artifacts: ArtifactStoreResource, dataset: DatasetResource, training: TrainingProfileResource,
    ) -> MaterializeResult:
        # Keys in this asset's run config win; the profile (demo | nightly) and the run budget fill in the rest.
        typed = profiles.op_run_config(context.run.run_config, context.op_execution_context.op.name)
        params, profile = resolve_training(name, config, training, dataset.source, typed)
        profile_metadata = {k: v if v is not None else MetadataValue.null() for k, v in profile.items()}
        context.log.info(f"{name}: profile {profile['profile']}, run budget {profile['budget_minutes']} min "
                         f"(share {profile['budget_share_minutes']}), params {params.model_dump()}")
        with warehouse.connect(read_only=True) as con:
            data = load_split_data(con)
            batches = con.execute(
                "select entity, source_file, batch_id, n_accepted from raw.load_batches order by entity, loaded_at"
            ).df()
        upstream_models = upstream_model_versions(warehouse, model_class)
        # A model that reads other models (lm_rerank's retrievers) is a new version when any of them is.
        versioned = params.model_dump() | ({"upstream_models": upstream_models} if upstream_models else {})
        # Item vectors from a non-default encoder precision (LMREC_ENCODER_PRECISION) make a different model; fp32
        # adds nothing, so versions from before precisions existed stay valid. The device (LMREC_DEVICE) is never
        # hashed: the same model trained on CPU or GPU is the same version (the card records where it trained).
        precision = encoder_precision() if "item_embeddings" in model_class.upstream else None
        if precision not in (None, "fp32"):
            versioned |= {"encoder_precision": precision}
        version = model_version(name, model_class.code_version, versioned, data.fingerprint)
        if (existing := registered(warehouse, name, version)) is not None:
            # Same code, config and training data: the saved artifact is exactly what training would produce.
            if skipped_now(warehouse, name):  # the writer only when there is a row to clear
                with warehouse.connect() as con:
                    clear_skip(con, name)
            card = card_path(existing)
            return reuse(context, name, version, f"already trained, {existing}", current={
                "model_version": version, "artifact_path": MetadataValue.path(existing), **profile_metadata,
                **({"model_card": MetadataValue.md(card.read_text())} if card.is_file() else {}),
            })
        # Budgets that follow the data: estimate before training, skip what cannot fit (never an OOM or a stall).
        cost = model_class.cost(params, DataSize.of(data))
        if reason := skip_reason(name, cost, training, profile["budget_minutes"], upstream_models):
            return skip(context, warehouse, name, version, data.fingerprint, reason, cost, profile_metadata)
        context.log.info(f"{name}: estimated {cost.run_seconds / 60:.1f} min with scoring, peak "
                         f"{cost.peak_bytes / 2**30:.2f} GiB ({cost.basis})")
        model = model_class(params)
        if upstream_models:
            model.attach_retrievers({m: load_model(m, path) for m, (_, path) in upstream_models.items()})
        started = time.perf_counter()
        report = model.fit(data)
        fit_seconds = time.perf_counter() - started
        device = str(getattr(model, "device", "cpu"))  # numpy models (popularity, EASE) have none: they run on CPU
        path = artifacts.model_dir(name, version)
        model.save(path)
        # Models that read item text use the LM of their `lm` param, or item_embeddings' (the bundled one by default).
        base_lm = getattr(params, "lm", None) or (BUNDLED_LM if "item_embeddings" in model_class.upstream else None)
        card = training_card(
            name=name, version=version, description=description, code_version=model_class.code_version,
            params=params.model_dump(), report=report, fit_seconds=fit_seconds, data=data, batches=batches,
            base_lm=base_lm, run_id=context.run_id, profile=profile, device=device, encoder_precision=precision,
        )
        write_card(path, card)  # inside the artifact folder, so the lineage row below hashes it with the weights
        context.log.info(f"{name} {version}: fitted in {fit_seconds:.1f}s on {device}, valid NDCG@10 {report.valid_ndcg_at_10}")

        row = pd.DataFrame([{
            "model": name, "model_version": version, "run_id": context.run_id, "artifact_path": str(path),
            "data_fingerprint": data.fingerprint, "params": json.dumps(report.params),
            "valid_ndcg_at_10": report.valid_ndcg_at_10, "trainable_parameters": report.trainable_parameters,
            "fit_seconds": fit_seconds, "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
        }])
        with warehouse.connect() as con:
            con.begin()
            replace_rows(con, "models.model_registry", row, where="model = ? and model_version = ?", params=(name, version))
            clear_skip(con, name)
            artifact_id = record_artifact(
                con, asset_key=name, version=version, run_id=context.run_id, code_version=model_class.code_version,
                parent_keys=[*SPLIT_DEPS, *model_class.upstream], path=path,
                details={"params": params.model_dump(), "fitted": report.params, "base_lm": base_lm,
                         "data_fingerprint": data.fingerprint, **profile},
            )
            con.commit()
        return MaterializeResult(data_version=DataVersion(version), metadata={
            **frame_metadata(row),
            "outcome": "trained",
            **profile_metadata,
            "model_version": version,
            "lineage_artifact_id": artifact_id,
            "artifact_path": MetadataValue.path(str(path)),
            "params": report.params,
            "valid_ndcg_at_10": report.valid_ndcg_at_10,
            "trainable_parameters": report.trainable_parameters,
            "fit_seconds": round(fit_seconds, 2),
            "peak_rss_mib": round(peak_rss_mib()),  # of the step's process (the whole run's, in-process)
            **cost.metadata(),
            "device": device,
            "training_curve": _curve_markdown(report, path),
            "model_card": MetadataValue.md(card),
            "n_users": data.n_users,
            "n_items": data.n_items,
        })

    return _model_asset


model_assets = [build_model_asset(name) for name in MODELS]


def _curve_markdown(report: FitReport, path) -> MetadataValue:
    """The training curve as a table and, when there is more than one point, an inline plot (also saved as PNG)."""
    if not report.curve:
        return MetadataValue.md("no training curve (closed-form or counting model)")
    curve = pd.DataFrame(report.curve)
    table = curve.round(5).to_markdown(index=False)
    if len(curve) < 2:
        return MetadataValue.md(table)
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, *ys = curve.columns
    fig, axes = plt.subplots(1, len(ys), figsize=(4 * len(ys), 3), squeeze=False)
    for ax, y in zip(axes[0], ys):
        ax.plot(curve[x], curve[y], marker="o")
        ax.set_xlabel(x)
        ax.set_title(y)
    fig.tight_layout()
    fig.savefig(path / "training_curve.png", dpi=80)
    plt.close(fig)
    encoded = base64.b64encode((path / "training_curve.png").read_bytes()).decode()
    return MetadataValue.md(f"![training curve](data:image/png;base64,{encoded})\n\n{table}")
