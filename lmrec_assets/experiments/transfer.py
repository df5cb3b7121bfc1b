"""Carry an adapted LM recommender (LoRA / full fine-tuning / soft prompt) from one domain to another.

What transfers is the trained LM side (adapter, weights or virtual tokens), which maps a prompt of titles to a user
vector. What does not is the item side: the item vectors are the target catalogue's own text embeddings, and the
per-item bias belongs to the source catalogue, so it is dropped (zero-shot) or re-initialised from the target's train
counts (few-shot, exactly as a model trained from scratch on the target starts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lmrec_assets.models.base import SplitData
from lmrec_assets.models.lm_training import ItemHead, NextItemLM
from lmrec_assets.models.text import encode_texts


def warm_started(model_class: type[NextItemLM], source_dir: Path) -> type[NextItemLM]:
    """A subclass whose `fit` starts from the encoder saved in `source_dir` instead of the pre-trained LM; the
    parameters left trainable are the same ones a fresh build trains (a saved PEFT adapter loads frozen)."""

    class Transferred(model_class):
        def build_encoder(self) -> nn.Module:
            trainable = {n for n, p in super().build_encoder().named_parameters() if p.requires_grad}
            encoder = self.load_encoder(source_dir)
            names = {n for n, _ in encoder.named_parameters()}
            if not trainable or not trainable <= names:
                raise ValueError(f"the encoder in {source_dir} does not have the parameters {model_class.name} trains")
            for name, parameter in encoder.named_parameters():
                parameter.requires_grad = name in trainable
            return encoder

    Transferred.__name__ = f"Transferred{model_class.__name__}"
    return Transferred


def on_catalogue(model: NextItemLM, data: SplitData, encoder: nn.Module | None = None) -> NextItemLM:
    """`model` (its encoder, or `encoder`) scoring `data`'s catalogue: target item text vectors, no item bias. With
    a freshly built encoder this is the un-adapted LM in the same scoring path (the zero-shot baseline)."""
    vectors, _ = encode_texts(data.item_text, model.params.lm)
    head = ItemHead(torch.from_numpy(np.ascontiguousarray(vectors)), model.params.temperature, item_bias=False)
    model.head = head.to(model.device)
    model.item_titles = list(data.item_titles)
    if encoder is not None:
        model.encoder = encoder.to(model.device)
    model.encoder.eval()
    return model
