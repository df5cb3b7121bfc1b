"""Soft prompt tuning: the LM stays frozen; a few trainable virtual-token embeddings are prepended to every prompt.

The virtual tokens (peft `PromptTuningConfig`, task FEATURE_EXTRACTION) start as the embeddings of the template's
own words, so training begins from a sensible instruction. peft prepends them to the input embeddings and extends
the attention mask with ones; pooling stays over the real tokens (see `NextItemLM.embed`). Objective, item side,
budget and early stopping are shared with `lm_finetune` (`lm_training.py`); the trained parameters are the virtual
tokens and the item bias. Saved as a standard PEFT adapter folder (`path / "adapter"`).

Settings. Defaults are demo-sized (see lm_finetune). Quality / nightly setting for ML-100K (default lr 3e-2, 16
virtual tokens): examples_per_user=4, max_epochs=8, max_minutes=7.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from lmrec_assets.models.lm_training import LMNextItemParams, NextItemLM
from lmrec_assets.models.text import PROMPT_TEMPLATES, resolve_lm


# The nightly / benchmark setting for ML-100K described above (benchmarks/leaderboard.py reads it).
QUALITY = {"examples_per_user": 4, "max_epochs": 8, "max_minutes": 7.0}


class LMPromptTuningParams(LMNextItemParams):
    num_virtual_tokens: int = 16


class LMPromptTuning(NextItemLM):
    name = "lm_prompt_tuning"
    code_version = "3"  # 2: the head adds the text similarity of the recent items (ItemHead); 3: w chosen on valid
    Params = LMPromptTuningParams
    default_lr = 3e-2  # only a few thousand prompt weights: they need large steps to move in a short budget

    def build_encoder(self) -> nn.Module:
        from peft import PromptTuningConfig, PromptTuningInit, get_peft_model
        from transformers import AutoModel

        lm = resolve_lm(self.params.lm)
        config = PromptTuningConfig(
            task_type="FEATURE_EXTRACTION",
            num_virtual_tokens=self.params.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=" ".join(PROMPT_TEMPLATES[self.params.template].format(history="").split()),
            tokenizer_name_or_path=lm,
        )
        return get_peft_model(AutoModel.from_pretrained(lm, use_safetensors=True), config)  # freezes every LM weight

    def save_encoder(self, path: Path) -> None:
        self.encoder.save_pretrained(path / "adapter")

    def load_encoder(self, path: Path) -> nn.Module:
        from peft import PeftModel
        from transformers import AutoModel

        return PeftModel.from_pretrained(AutoModel.from_pretrained(resolve_lm(self.params.lm), use_safetensors=True), path / "adapter")
