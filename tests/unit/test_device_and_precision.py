"""LMREC_DEVICE and LMREC_ENCODER_PRECISION with the real bundled MiniLM: device choices and errors, int8 / bf16
encodings against fp32, a cache per precision, and the device on the model card."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec_assets.ingestion.sources.demo import MIN_HISTORY, generate_demo
from lmrec_assets.models.base import FitReport, SplitData
from lmrec_assets.models.cards import training_card
from lmrec_assets.models.embeddings import embeddings_version
from lmrec_assets.models.sasrec import SASRec, SASRecParams
from lmrec_assets.models.device import autocast, cpu_has_bf16, cpu_has_vnni, resolve_device
from lmrec_assets.models.text import encode_texts, encoder_precision, render_history_prompt


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.delenv("LMREC_DEVICE", raising=False)
    monkeypatch.delenv("LMREC_ENCODER_PRECISION", raising=False)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo_texts() -> tuple[list[str], list[str]]:
    """50 demo item texts as dim_items.sql builds them, and 20 prompts of 5 of their titles."""
    items = generate_demo(n_users=1, n_items=50, n_interactions=MIN_HISTORY).items.frame
    texts = [f"{t}. Genres: {c.replace('|', ', ')}. {d}" for t, c, d in zip(items.title, items.categories, items.description)]
    rng = np.random.default_rng(0)
    prompts = [render_history_prompt(list(rng.choice(items.title, 5, replace=False)), max_items=5) for _ in range(20)]
    return texts, prompts


def test_resolve_device_choices_and_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device() == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("LMREC_DEVICE", "CPU ")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setenv("LMREC_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"LMREC_DEVICE='tpu'.*auto, cpu, cuda"):
        resolve_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("LMREC_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="LMREC_DEVICE=cuda but torch sees no CUDA device"):
            resolve_device()
        with pytest.raises(RuntimeError, match="LMREC_DEVICE=cuda"):
            SASRec(SASRecParams())  # a model asked to run on a GPU that is not there fails at once


def test_encoder_precision_choices(monkeypatch):
    assert encoder_precision() == "fp32"
    assert encoder_precision("INT8") == ("int8-act8" if cpu_has_vnni() else "int8-act7")
    assert encoder_precision("bf16") == ("bf16" if torch.cuda.is_available() or cpu_has_bf16() else "fp32")
    monkeypatch.setenv("LMREC_ENCODER_PRECISION", "fp8")
    with pytest.raises(ValueError, match=r"LMREC_ENCODER_PRECISION='fp8'.*fp32, int8, bf16"):
        encoder_precision()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_low_precision_encodings_stay_close_to_fp32_in_their_own_cache(precision, demo_texts, tmp_path, monkeypatch):
    if encoder_precision(precision) == "fp32":
        pytest.skip(f"{precision} falls back to fp32 on this machine (no native bf16)")
    texts, prompts = demo_texts
    fp32, n_fp32 = encode_texts(texts + prompts, cache_dir=tmp_path)
    monkeypatch.setenv("LMREC_ENCODER_PRECISION", precision)
    low, n_low = encode_texts(texts + prompts, cache_dir=tmp_path)
    # The cache keeps precisions apart: nothing of the fp32 run is reused, and fp32 still reads its own vectors.
    assert n_fp32 == n_low == len(texts) + len(prompts)
    assert len(list(tmp_path.iterdir())) == 2
    assert encode_texts(texts + prompts, cache_dir=tmp_path)[1] == 0
    monkeypatch.delenv("LMREC_ENCODER_PRECISION")
    again, n_again = encode_texts(texts + prompts, cache_dir=tmp_path)
    assert n_again == 0
    np.testing.assert_array_equal(again, fp32)

    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, rtol=1e-5)
    items, users = cosines(low[: len(texts)], fp32[: len(texts)]), cosines(low[len(texts) :], fp32[len(texts) :])
    if precision == "bf16":
        assert items.min() > 0.99 and users.min() > 0.99
    elif encoder_precision(precision) == "int8-act8":  # a CPU with VNNI: 8-bit activations
        assert items.mean() > 0.99 and users.mean() > 0.99
        assert items.min() > 0.98 and users.min() > 0.98
    else:
        # int8 with 7-bit activations (no VNNI): 0.976 mean / 0.96 min on these texts; the feed-forward layers lose
        # most (see encoder_precision).
        assert items.mean() > 0.97 and users.mean() > 0.97
        assert items.min() > 0.95 and users.min() > 0.95
    # The same catalogue at another precision is another item_embeddings version; fp32 keeps its old hash.
    assert embeddings_version("lm", ["i1"], ["t"], "int8") != embeddings_version("lm", ["i1"], ["t"], "fp32")


def test_model_card_records_the_device():
    data = SplitData(
        user_ids=np.array(["u0"]), item_ids=np.array(["i0", "i1"]), item_text=["a", "b"], item_titles=["a", "b"],
        train_sequences=[np.array([0, 1])], valid_items=np.array([-1]), test_items=np.array([-1]), fingerprint="f",
    )
    card = training_card(
        name="sasrec", version="v1", description="d", code_version="2", params={"seed": 7}, report=FitReport(),
        fit_seconds=1.0, data=data, batches=pd.DataFrame(columns=["entity", "source_file", "batch_id", "n_accepted"]),
        base_lm=None, run_id="r", device=str(SASRec(SASRecParams()).device), encoder_precision="int8",
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"by Dagster run `r` on `{device}` (`LMREC_DEVICE`; the version does not depend on it)" in card
    assert "- Item-text encoder precision: `int8`" in card
    assert "device" not in SASRecParams.model_fields  # so it never enters the model version


def test_bf16_autocast_only_where_the_cpu_computes_bf16_natively():
    """Emulated bf16 (an AVX2-only CPU) made one LM training step ~30x slower than fp32: autocast stays off there."""
    cpu = torch.device("cpu")
    assert autocast(cpu, True)._enabled == cpu_has_bf16()
    assert not autocast(cpu, False)._enabled
