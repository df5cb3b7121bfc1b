"""The item_embeddings asset: every catalogue item's `item_text` encoded once by the pre-trained LM.

Encoding goes through the content-addressed cache of `encode_texts`, so a re-run encodes only new or changed items,
and the LM models that depend on this asset read their item vectors from that warm cache. The artifact is a
portable copy for other consumers: `embeddings.safetensors` (float32, L2-normalised, rows in `item_ids.json` order).
The encoder precision (`LMREC_ENCODER_PRECISION`, see `text.encoder_precision`) is part of the version.
"""

import hashlib
import json

from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset
from safetensors.numpy import save_file

from lmrec_assets.lineage import record_artifact, reuse_if_unchanged
from lmrec_assets.models.text import BUNDLED_LM, encode_texts, encoder_precision
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL


CODE_VERSION = "1"


class ItemEmbeddingsConfig(Config):
    lm: str = BUNDLED_LM  # local path or hub id; must match the models' `lm` for them to hit the cache


def embeddings_version(lm: str, item_ids: list[str], texts: list[str], precision: str = "fp32") -> str:
    """Same LM, encoder precision and catalogue text → same version (and the same artifact folder). fp32 hashes as
    before precisions existed, so existing versions stay valid."""
    payload = json.dumps([lm, item_ids, texts] + ([precision] if precision != "fp32" else []))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@asset(
    group_name="models",
    deps=["dim_items"],
    kinds={"python", "pytorch"},
    owners=["team:ml"],
    description="item_text of every catalogue item encoded by the pre-trained LM (cached by text: a re-run encodes "
    "only new or changed items) → artifacts/item_embeddings/<version>/embeddings.safetensors.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
)
def item_embeddings(
    context: AssetExecutionContext, config: ItemEmbeddingsConfig, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        items = con.execute("select item_id, item_text from marts.dim_items order by item_id").df()
    item_ids, texts = items["item_id"].astype(str).tolist(), items["item_text"].tolist()
    precision = encoder_precision()
    version = embeddings_version(config.lm, item_ids, texts, precision)
    with warehouse.connect(read_only=True) as con:
        if reused := reuse_if_unchanged(context, con, "item_embeddings", version, "same LM, precision and item texts",
                                        current={"version": version}):
            return reused
    context.log.info(f"encoding {len(texts)} item texts with {config.lm} at {precision} (cached texts are reused)")
    vectors, n_new = encode_texts(texts, config.lm, log=context.log.info)
    path = artifacts.model_dir("item_embeddings", version)
    save_file({"embeddings": vectors}, str(path / "embeddings.safetensors"))
    (path / "item_ids.json").write_text(json.dumps(item_ids))
    context.log.info(f"item_embeddings {version}: {n_new} newly encoded, {len(texts) - n_new} from cache")
    with warehouse.connect() as con:
        con.begin()
        record_artifact(con, asset_key="item_embeddings", version=version, run_id=context.run_id,
                        code_version=CODE_VERSION, parent_keys=["dim_items"], path=path, details={"base_lm": config.lm, "encoder_precision": precision})
        con.commit()
    return MaterializeResult(data_version=DataVersion(version), metadata={
        "version": version,
        "outcome": "encoded",
        "n_items": len(texts),
        "n_newly_encoded": n_new,
        "n_from_cache": len(texts) - n_new,
        "dim": int(vectors.shape[1]),
        "lm": config.lm,
        "encoder_precision": precision,
        "artifact_path": MetadataValue.path(str(path / "embeddings.safetensors")),
    })
