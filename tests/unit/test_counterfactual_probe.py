"""FaiRLLM counterfactual prompts for every model that reads a prompt, with the real bundled MiniLM on the tiny
themed catalogue (real fits, tiny budgets, no mocks): the probe gives finite SNSR/SNSV for each of them, the
neutral prompt scores exactly like `score`, and a re-stated prompt reaches the model."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec_assets.evaluation.fairness import counterfactual_prompt
from lmrec_assets.evaluation.fairness_assets import (
    ALL,
    COUNTERFACTUAL_ATTRIBUTES,
    COUNTERFACTUAL_KS,
    COUNTERFACTUAL_MODELS,
    SIMILARITIES,
    counterfactual_rows,
    counterfactual_sample,
)
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.base import PromptRecommender
from lmrec_assets.models.ease import EASE
from lmrec_assets.models.generative_p5 import _DECODE_CACHE, GenerativeP5, GenerativeP5Params
from lmrec_assets.models.lm_finetune import LMFinetune, LMFinetuneParams
from lmrec_assets.models.lm_rerank import LMRerank, LMRerankParams
from lmrec_assets.models.prompt_tuning import LMPromptTuning, LMPromptTuningParams
from lmrec_assets.models.zero_shot import ZeroShotParams, ZeroShotPrompt
from tests.unit.test_lm_models import themed_split

# Budgets: a couple of optimizer steps each; the probe is under test, not the model's quality.
STEPS = dict(max_epochs=1, max_steps=2, examples_per_user=1, recent_positions=4, batch_size=8, max_minutes=1.0)


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "data"))  # the text-embedding cache lives under it
    torch.set_num_threads(1)


def zero_shot(data):
    return ZeroShotPrompt(ZeroShotParams())


def lm_finetune(data):
    return LMFinetune(LMFinetuneParams(**STEPS))


def lm_prompt_tuning(data):
    return LMPromptTuning(LMPromptTuningParams(**STEPS, num_virtual_tokens=4))


def generative_p5(data):
    _DECODE_CACHE.clear()
    return GenerativeP5(GenerativeP5Params(**STEPS, beam_width=4, fit_valid_users=0, max_title_tokens=6,
                                           max_explanation_tokens=12, bf16=False))


def lm_rerank(data):
    retriever = EASE(EASE.Params(l2_grid=[10.0]))
    retriever.fit(data)
    model = LMRerank(LMRerankParams(**STEPS, candidates=6, blend_grid=[0.0]))
    model.attach_retrievers({"ease": retriever})
    return model


BUILDERS = {"zero_shot_prompt": zero_shot, "lm_finetune": lm_finetune, "lm_prompt_tuning": lm_prompt_tuning,
            "generative_p5": generative_p5, "lm_rerank": lm_rerank}


def attributes_of(n_users: int) -> pd.DataFrame:
    """Every user's attributes, as `user_attributes` reads them from marts.dim_users (values as the warehouse's)."""
    return pd.DataFrame({
        "gender": [["F", "M", None][u % 3] for u in range(n_users)],  # None: unknown, not a value to state
        "age_bracket": [["18-24", "25-34", "56+", "under 18"][u % 4] for u in range(n_users)],
        "occupation": [["engineer", "artist", "retired"][u % 3] for u in range(n_users)],
        "activity_level": "light",
    })


def test_every_prompt_model_is_probed():
    assert set(COUNTERFACTUAL_MODELS) == set(BUILDERS)
    assert all(not issubclass(cls, PromptRecommender) for name, (cls, _) in MODELS.items() if name not in BUILDERS)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_counterfactual_probe_gives_finite_snsr_and_snsv(name):
    data = themed_split()
    model = BUILDERS[name](data)
    model.fit(data)
    assert isinstance(model, PromptRecommender) and model.name == name

    # The protocol: the neutral prompts score exactly as `score`, and a stated attribute reaches the model.
    users = np.arange(6)
    histories = data.histories("valid")
    neutral = model.user_prompts(users, histories)
    np.testing.assert_allclose(model.score_prompts(users, histories, neutral), model.score(users, histories),
                               rtol=1e-5, atol=1e-5)
    stated = [counterfactual_prompt(p, "occupation", "retired") for p in neutral]
    assert not np.allclose(model.score_prompts(users, histories, stated), model.score(users, histories))

    attributes = attributes_of(data.n_users)
    sample = counterfactual_sample(data, n_users=10, seed=7)
    rows, n_prompts = counterfactual_rows(model, data, attributes, sample, batch_size=16)  # batches cross value blocks
    n_values = sum(attributes[a].nunique() for a in COUNTERFACTUAL_ATTRIBUTES)
    assert n_prompts == len(sample) * (1 + n_values)
    assert (rows.n_users == len(sample)).all() and set(rows.side) == {"counterfactual"}

    summary = rows[rows.group == ALL]
    expected = {(a, f"{s}_{m}", k) for a in COUNTERFACTUAL_ATTRIBUTES for s in ("snsr", "snsv") for m in SIMILARITIES
                for k in COUNTERFACTUAL_KS}
    assert set(zip(summary.attribute, summary.metric, summary.k)) == expected
    assert np.isfinite(summary.value).all() and summary.value.between(0, 1).all()
    per_value = rows[rows.group != ALL]
    assert set(per_value[per_value.attribute == "gender"].group) == {"F", "M"}
    assert np.isfinite(per_value.value).all() and per_value.value.between(0, 1).all()
