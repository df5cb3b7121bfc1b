"""The item_embeddings asset: every catalogue item's `item_text` encoded once by the pre-trained LM.

Encoding goes through the content-addressed cache of `encode_texts`, so a re-run encodes only new or changed items,
and the LM models that depend on this asset read their item vectors from that warm cache. The artifact is a
portable copy for other consumers: `embeddings.safetensors` (float32, L2-normalised, rows in `item_ids.json` order).
The encoder precision (`LMREC_ENCODER_PRECISION`, see `text.encoder_precision`) is part of the version.

Like `recommendations`, it is a graph: `plan_item_encoding` (warehouse pool: reads dim_items, skip-unchanged) fans out
one `encode_item_block` step per block of items (run config `item_blocks`, default 1), which reads no warehouse and
adds its vectors to the cache as one part file, written whole or not at all; `write_item_embeddings` (pool) reads
every vector back from the cache into the artifact and its lineage row. Blocks run side by side on the multiprocess
or Celery executor, and a killed block leaves the others' vectors cached: the next attempt encodes only its items.
"""

import hashlib
import json

from dataclasses import dataclass
from typing import Optional

from dagster import (
    AssetIn,
    Config,
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)
from pydantic import Field
from safetensors.numpy import save_file

from lmrec_assets.lineage import record_artifact, reuse_if_unchanged, versioned_output
from lmrec_assets.models.text import BUNDLED_LM, encode_texts, encoder_precision
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL


CODE_VERSION = "1"


class ItemEmbeddingsConfig(Config):
    lm: str = BUNDLED_LM  # local path or hub id; must match the models' `lm` for them to hit the cache
    item_blocks: int = Field(
        1, ge=1, le=4096,
        description="blocks of items encoded as separate steps (side by side on the multiprocess or Celery executor; "
        "give each step its share of the cores with OMP_NUM_THREADS)",
    )


@dataclass(frozen=True)
class EncodingPlan:
    version: str
    lm: str
    precision: str
    item_ids: list[str]
    texts: list[str]
    reused: dict | None  # the re-reported metadata when this version exists already (then no block is encoded)


@dataclass(frozen=True)
class ItemBlock:
    lm: str
    precision: str
    block: int
    n_blocks: int
    texts: list[str]


def embeddings_version(lm: str, item_ids: list[str], texts: list[str], precision: str = "fp32") -> str:
    """Same LM, encoder precision and catalogue text → same version (and the same artifact folder). fp32 hashes as
    before precisions existed, so existing versions stay valid."""
    payload = json.dumps([lm, item_ids, texts] + ([precision] if precision != "fp32" else []))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@op(
    ins={"dim_items": In(Nothing)},
    out={"plan": Out(EncodingPlan), "blocks": DynamicOut(Optional[ItemBlock])},
    pool=WAREHOUSE_POOL,
    description="The catalogue's item texts, the version (LM, precision, texts) and one block per step.",
)
def plan_item_encoding(context: OpExecutionContext, config: ItemEmbeddingsConfig, warehouse: WarehouseResource):
    with warehouse.connect(read_only=True) as con:
        items = con.execute("select item_id, item_text from marts.dim_items order by item_id").df()
        item_ids, texts = items["item_id"].astype(str).tolist(), items["item_text"].tolist()
        precision = encoder_precision()
        version = embeddings_version(config.lm, item_ids, texts, precision)
        if reused := reuse_if_unchanged(context, con, "item_embeddings", version, "same LM, precision and item texts",
                                        current={"version": version}):
            yield Output(EncodingPlan(version, config.lm, precision, item_ids, texts, dict(reused.metadata)), "plan")
            # One empty block: a fan-out with no block would skip the write step, and with it every asset downstream.
            yield DynamicOutput(None, mapping_key="unchanged", output_name="blocks")
            return
    yield Output(EncodingPlan(version, config.lm, precision, item_ids, texts, None), "plan")
    n = min(config.item_blocks, max(len(texts), 1))
    size = -(-len(texts) // n)  # contiguous blocks of item_id order
    context.log.info(f"encoding {len(texts)} item texts with {config.lm} at {precision} in {n} block(s) "
                     "(cached texts are reused)")
    for block in range(n):
        chunk = texts[block * size : (block + 1) * size]
        yield DynamicOutput(ItemBlock(config.lm, precision, block, n, chunk), mapping_key=f"block_{block}",
                            output_name="blocks")


@op(description="One block of item texts through the LM into the embedding cache (no warehouse).")
def encode_item_block(context: OpExecutionContext, block: Optional[ItemBlock]) -> int:
    """How many of the block's texts were newly encoded."""
    if block is None:  # the version exists already: nothing to encode
        return 0
    if encoder_precision() != block.precision:  # every step must encode as the version says
        raise RuntimeError(f"this step encodes at {encoder_precision()}, the plan at {block.precision}: "
                           "set the same LMREC_ENCODER_PRECISION for every process of the run")
    _, n_new = encode_texts(block.texts, block.lm, log=context.log.info)
    context.log.info(f"block {block.block + 1}/{block.n_blocks}: {len(block.texts)} texts, {n_new} newly encoded")
    return n_new


@op(
    out=Out(Nothing),
    pool=WAREHOUSE_POOL,
    description="Every item's vector from the cache → artifacts/item_embeddings/<version>/, and its lineage row.",
)
def write_item_embeddings(context: OpExecutionContext, plan: EncodingPlan, newly_encoded: list[int],
                          warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
    if plan.reused is not None:
        yield versioned_output(plan.version, plan.reused)
        return
    vectors, missing = encode_texts(plan.texts, plan.lm)  # all cached by the blocks; `missing` is 0 unless one was lost
    n_new = sum(newly_encoded) + missing
    path = artifacts.model_dir("item_embeddings", plan.version)
    save_file({"embeddings": vectors}, str(path / "embeddings.safetensors"))
    (path / "item_ids.json").write_text(json.dumps(plan.item_ids))
    context.log.info(f"item_embeddings {plan.version}: {n_new} newly encoded, {len(plan.texts) - n_new} from cache")
    with warehouse.connect() as con:
        con.begin()
        record_artifact(con, asset_key="item_embeddings", version=plan.version, run_id=context.run_id,
                        code_version=CODE_VERSION, parent_keys=["dim_items"], path=path,
                        details={"base_lm": plan.lm, "encoder_precision": plan.precision, "blocks": len(newly_encoded)})
        con.commit()
    yield versioned_output(plan.version, {
        "version": plan.version,
        "outcome": "encoded",
        "n_items": len(plan.texts),
        "n_newly_encoded": n_new,
        "n_from_cache": len(plan.texts) - n_new,
        "dim": int(vectors.shape[1]),
        "lm": plan.lm,
        "encoder_precision": plan.precision,
        "blocks": len(newly_encoded),
        "artifact_path": MetadataValue.path(str(path / "embeddings.safetensors")),
    })


@graph_asset(
    key="item_embeddings",
    group_name="models",
    ins={"dim_items": AssetIn(key="dim_items", dagster_type=Nothing)},
    kinds={"python", "pytorch"},
    owners=["team:ml"],
    description="item_text of every catalogue item encoded by the pre-trained LM, in blocks of items (run config "
    "`item_blocks`) that run side by side on the multiprocess or Celery executor (cached by text: a re-run encodes "
    "only new or changed items) → artifacts/item_embeddings/<version>/embeddings.safetensors.",
    code_version=CODE_VERSION,
)
def item_embeddings(dim_items):
    plan, blocks = plan_item_encoding(dim_items=dim_items)
    return write_item_embeddings(plan, blocks.map(encode_item_block).collect())
