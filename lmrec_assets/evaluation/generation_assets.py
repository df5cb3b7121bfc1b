"""generation_metrics: what a generative recommender writes, measured as text (beside the ranking metrics).

For each generative model (`GENERATIVE_MODELS`), on a fixed sample of users (config `users`; 0 = all):
- task `sequential`, templates `sequential` (trained) and `sequential_unseen` (never trained on: prompt
  generalisation): HR@10 / NDCG@10 of the constrained ranking on the test split; BLEU-1/4, ROUGE-1/2/L F1 and USR of
  the *unconstrained* greedy title against the true next title; `hallucination_rate`, the share of those greedy
  titles that are no catalogue title. The valid split gets the hallucination rate only (the issue's definition).
- task `explanation`: "why would the user who watched … enjoy <test item>" → greedy explanation against the item's
  reference explanation (its genres + description, `explanation_target`); BLEU/ROUGE/USR and PEPLER's FMR (one of
  the item's categories named), FCR and DIV over the catalogue's categories. On the demo the reference is the same
  text the model was trained to write for that item (from other users' pairs), so BLEU/ROUGE measure how well it
  recalls item features, not free-form explanation quality; datasets with user-written references (ml-latest-small
  tags) are a benchmark-only extension.
Long format → evaluation.generation_metrics (model, version, split, task, template, metric, value, n_users,
reference, protocol), published to the serving database as `generation_metrics`.
"""

import hashlib
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset

from lmrec_assets.evaluation.generation import feature_metrics, text_metrics
from lmrec_assets.models.ranking import PROTOCOL, evaluate
from lmrec_assets.lineage import record_artifact, reuse_if_unchanged
from lmrec_assets.models.base import SplitData
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.generative_p5 import GenerativeP5, explanation_target, render
from lmrec_assets.models.registry import latest_versions, load_model
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows

CODE_VERSION = "1"
GENERATIVE_MODELS = ("generative_p5",)
GENERATION_PROTOCOL = (f"{PROTOCOL}; text: unconstrained greedy decoding vs one reference per user; BLEU via "
                       "sacrebleu, ROUGE F1 via rouge-score (0-100); USR/FMR/FCR/DIV as PEPLER")
COLUMNS = ["model", "model_version", "run_id", "split", "task", "template", "metric", "value", "n_users", "reference",
           "protocol", "evaluated_at"]


class GenerationMetricsConfig(Config):
    users: int = 100  # users sampled per split (seed below); 0: every evaluation user
    seed: int = 7


def sample_users(data: SplitData, split: str, n: int, seed: int) -> np.ndarray:
    users = data.evaluation_users(split)
    return users if n <= 0 or n >= len(users) else np.sort(np.random.default_rng(seed).choice(users, n, replace=False))


def generation_rows(model: GenerativeP5, data: SplitData, item_categories: list[list[str]], n_users: int, seed: int) -> pd.DataFrame:
    """The long-format metric rows of one generative model (see the module docstring)."""
    p, rows = model.params, []

    def add(split: str, task: str, template: str, metrics: dict, n: int, reference: str) -> None:
        rows.extend({"split": split, "task": task, "template": template, "metric": name, "value": float(value),
                     "n_users": n, "reference": reference} for name, value in metrics.items())

    def hallucination(outputs: list[list[int]]) -> float:
        return float(np.mean([not model.trie.is_title(tokens) for tokens in outputs]))

    valid_users = sample_users(data, "valid", n_users, seed)
    outputs = model.generate(model.prompts(data.histories("train"), valid_users, "sequential"), p.max_title_tokens)
    add("valid", "sequential", "sequential", {"hallucination_rate": hallucination(outputs)}, len(valid_users), "catalogue titles")

    users = sample_users(data, "test", n_users, seed)
    histories, targets = data.histories("valid"), data.test_items[users]
    titles = [model.normalized(data.item_titles[i], p.max_title_tokens) for i in targets]
    for template in ("sequential", "sequential_unseen"):
        model.ranking_template = template
        ranking = evaluate(model, data, "test", ks=(10,), users=users).iloc[0]
        outputs = model.generate(model.prompts(histories, users, template), p.max_title_tokens)
        add("test", "sequential", template, {
            "hr_at_10": ranking["hr"], "ndcg_at_10": ranking["ndcg"], "hallucination_rate": hallucination(outputs),
            **text_metrics([model.text(o) for o in outputs], titles),
        }, len(users), "the held-out item's title")
    model.ranking_template = "sequential"

    prompts = [render("explanation", model.history_titles(histories[u]), data.item_titles[i]) for u, i in zip(users, targets)]
    sentences = [model.text(o) for o in model.generate(prompts, p.max_explanation_tokens)]
    references = [model.normalized(explanation_target(data.item_text[i], data.item_titles[i]), p.max_explanation_tokens) for i in targets]
    # Features in the form the model writes them (uncased tokenizer: "Sci-Fi" comes out as "sci - fi").
    features = {c: model.normalized(c, p.max_explanation_tokens) for categories in item_categories for c in categories}
    truth = [[features[c] for c in item_categories[i]] for i in targets]
    add("test", "explanation", "explanation", {
        **text_metrics(sentences, references),
        **(feature_metrics(sentences, truth, set(features.values())) if features else {}),
    }, len(users), "the held-out item's genres + description")
    return pd.DataFrame(rows)


@asset(
    group_name="evaluation",
    deps=list(GENERATIVE_MODELS),
    kinds={"duckdb", "python"},
    owners=["team:ml"],
    description="Text metrics of the generative recommenders → evaluation.generation_metrics (long format): per task "
    "(sequential with the trained and an unseen template, explanation) BLEU-1/4, ROUGE-1/2/L F1, USR, FMR/FCR/DIV "
    "(PEPLER), the unconstrained-decoding hallucination rate and the ranking HR/NDCG@10 per template, on a sample "
    f"of users. Protocol: {GENERATION_PROTOCOL}.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
)
def generation_metrics(context: AssetExecutionContext, config: GenerationMetricsConfig, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(GENERATIVE_MODELS))
        version = hashlib.sha256(
            f"{CODE_VERSION}|{sorted(zip(registry['model'], registry['model_version']))}|{config.model_dump_json()}".encode()
        ).hexdigest()[:16]
        if reused := reuse_if_unchanged(context, con, "generation_metrics", version, "same model versions and config"):
            return reused
        data = load_split_data(con)
        categories = con.execute("select categories from marts.dim_items order by item_id").df()["categories"]
    item_categories = [[c.strip() for c in (value or "").split("|") if c.strip()] for value in categories]
    evaluated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frames = []
    for row in registry.itertuples():
        model = load_model(row.model, row.artifact_path)
        frames.append(generation_rows(model, data, item_categories, config.users, config.seed).assign(
            model=row.model, model_version=row.model_version, run_id=context.run_id, protocol=GENERATION_PROTOCOL,
            evaluated_at=evaluated_at,
        ))
    table = pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)

    with warehouse.connect() as con:
        con.begin()
        for row in registry.itertuples():
            replace_rows(con, "evaluation.generation_metrics", table[table.model == row.model],
                         where="model = ? and model_version = ?", params=(row.model, row.model_version))
        record_artifact(
            con, asset_key="generation_metrics", version=version, run_id=context.run_id, code_version=CODE_VERSION,
            parent_keys=registry["model"], details={"model_versions": dict(zip(registry["model"], registry["model_version"])),
                                                    **config.model_dump(), "protocol": GENERATION_PROTOCOL},
        )
        con.commit()
    wide = table.pivot_table(index=["model", "split", "task", "template"], columns="metric", values="value")
    return MaterializeResult(data_version=DataVersion(version), metadata={
        **frame_metadata(table, preview_rows=0),
        "outcome": "computed",
        "metrics": MetadataValue.md(wide.round(4).reset_index().to_markdown(index=False)) if len(table) else MetadataValue.md("no generative model"),
        "protocol": GENERATION_PROTOCOL,
    })
