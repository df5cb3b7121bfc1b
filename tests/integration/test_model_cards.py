"""A model card per model version: stored with the artifact, hashed in lineage, completed by evaluation and fairness,
and shown in the UI."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pytest

from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.cards import CARD_FILE

pytestmark = pytest.mark.integration


def reads_text(model: str) -> bool:
    """Models built on the pre-trained LM: an `lm` parameter, or the item_embeddings it produces."""
    model_class = MODELS[model][0]
    return "lm" in model_class.Params.model_fields or "item_embeddings" in model_class.upstream


def test_every_model_version_has_a_complete_card_traced_in_lineage(demo_pipeline):
    result, data_dir = demo_pipeline
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        registry = con.execute("select model, model_version, artifact_path from models.model_registry").df()
        model_rows = con.execute("select asset_key, version, files from lineage.artifacts").df()
        card_sha = {
            asset: json.loads(con.execute(
                "select details from lineage.artifacts where asset_key = ? order by created_at desc limit 1", [asset]
            ).fetchone()[0])["model_card_sha256"]
            for asset in ("evaluation_metrics", "fairness_metrics")
        }
    assert set(registry.model) == set(MODELS) == set(card_sha["evaluation_metrics"]) == set(card_sha["fairness_metrics"])
    for row in registry.itertuples():
        card = (data_dir / "artifacts" / row.model / row.model_version / CARD_FILE)
        assert str(card.parent) == row.artifact_path
        text = card.read_text()
        for heading in ("## Data and split", "## Training", "## Evaluation", "## Fairness", "## Intended use and limits"):
            assert heading in text, (row.model, heading)
        assert "Not evaluated yet" not in text and "| test " in text and "| valid " in text, row.model
        assert "No fairness summary yet" not in text, row.model
        assert "leave-one-out" in text and '"max_epochs": 1' in text
        if reads_text(row.model):
            assert "all-MiniLM-L6-v2" in text and "**Apache-2.0**" in text, row.model
        else:
            assert "Base language model: none" in text, row.model
        # Lineage: the model's row hashed the folder with the card written at training.
        files = json.loads(model_rows[(model_rows.asset_key == row.model) & (model_rows.version == row.model_version)].files.iloc[0])
        assert CARD_FILE in files

    # Each later writer records the sha256 of the card it wrote (and shows the card). The file itself may since have
    # been rewritten: other tests re-evaluate copies whose registry still points at these artifact folders.
    shown = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    for model in MODELS:
        assert shown[model]["model_card"].value.startswith(f"# Model card: {model}")
        evaluated = shown["evaluation_metrics"][f"model_card_{model}"].value
        assert "| test " in evaluated
        assert card_sha["evaluation_metrics"][model] == hashlib.sha256(evaluated.encode()).hexdigest()
        assert len(card_sha["fairness_metrics"][model]) == 64
