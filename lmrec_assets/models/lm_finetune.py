"""Pre-train, then fine-tune: the LM that encodes the user prompt is adapted to next-item prediction.

`mode="lora"` (default) trains rank-r LoRA adapters on the attention query/value projections (peft; saved as a
standard PEFT adapter folder, `PeftModel.from_pretrained(AutoModel.from_pretrained(lm), path / "adapter")`);
`mode="full"` trains every LM weight (saved as a Hugging Face model folder with safetensors, `path / "lm"`).
Objective, item side, budget and early stopping are shared with prompt tuning (`lm_training.py`).

Settings. The defaults are demo-sized: one prompt per user and epoch, 2 epochs, at most 1 minute of training (the
1k-user demo fits in about 50 s on 2 cores). Quality / nightly setting for ML-100K, used for the benchmark numbers:
    LoRA (default lr 2e-3, r 8):  examples_per_user=4, max_epochs=8, max_minutes=7
    full (default lr 5e-5):       mode="full", examples_per_user=4, max_epochs=8, max_minutes=7
max_minutes is the binding budget on a busy 2-core machine (about 1.5-2 minutes per epoch of 118 steps); use
max_steps instead when runs must be reproducible across machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import nn

from lmrec_assets.models.lm_training import LMNextItemParams, NextItemLM
from lmrec_assets.models.text import resolve_lm

DEFAULT_LR = {"lora": 2e-3, "full": 5e-5}  # full fine-tuning moves 22M weights: a LoRA-sized step would wreck them
# The nightly / benchmark setting for ML-100K described above (benchmarks/leaderboard.py reads it).
QUALITY = {"examples_per_user": 4, "max_epochs": 8, "max_minutes": 7.0}


class LMFinetuneParams(LMNextItemParams):
    mode: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = ["query", "value"]  # BERT-style attention projections


class LMFinetune(NextItemLM):
    name = "lm_finetune"
    code_version = "3"  # 2: the head adds the text similarity of the recent items (ItemHead); 3: w chosen on valid
    Params = LMFinetuneParams

    @property
    def default_lr(self) -> float:
        return DEFAULT_LR[self.params.mode]

    def build_encoder(self) -> nn.Module:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        lm = AutoModel.from_pretrained(resolve_lm(self.params.lm), use_safetensors=True)
        if self.params.mode == "full":
            return lm  # every weight stays trainable
        config = LoraConfig(
            r=self.params.lora_r,
            lora_alpha=self.params.lora_alpha,
            lora_dropout=self.params.lora_dropout,
            target_modules=self.params.lora_targets,
            task_type="FEATURE_EXTRACTION",
        )
        return get_peft_model(lm, config)  # freezes the LM; B = 0 at init, so step 0 is the pre-trained LM

    def save_encoder(self, path: Path) -> None:
        if self.params.mode == "full":
            self.encoder.save_pretrained(path / "lm")  # config.json + model.safetensors
            self.tokenizer.save_pretrained(path / "lm")  # so the folder is a complete HF model
        else:
            self.encoder.save_pretrained(path / "adapter")  # adapter_config.json + adapter_model.safetensors

    def load_encoder(self, path: Path) -> nn.Module:
        from peft import PeftModel
        from transformers import AutoModel

        if self.params.mode == "full":
            return AutoModel.from_pretrained(path / "lm", use_safetensors=True)
        return PeftModel.from_pretrained(AutoModel.from_pretrained(resolve_lm(self.params.lm), use_safetensors=True), path / "adapter")
