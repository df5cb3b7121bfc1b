"""lm_rerank with the real bundled MiniLM and a real fitted retriever on a tiny themed catalogue: no mocks."""

import numpy as np
import pytest
import torch

from lmrec_assets.models.ranking import masked_scores, top_k
from lmrec_assets.models.ease import EASE
from lmrec_assets.models.lm_rerank import LMRerank, LMRerankParams
from lmrec_assets.models.popularity import Popularity
from tests.unit.test_lm_models import themed_split

TINY = dict(candidates=6, max_epochs=2, patience=5, examples_per_user=2, recent_positions=4, batch_size=8,
            max_minutes=1.0, blend_grid=[0.0, 1.0])


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "data"))
    torch.set_num_threads(1)


def retrievers(data):
    fitted = {}
    for model in (Popularity(), EASE(EASE.Params(l2_grid=[1.0, 10.0]))):
        model.fit(data)
        fitted[model.name] = model
    return fitted


def test_rerank_trains_picks_retriever_on_valid_and_round_trips(tmp_path):
    data = themed_split()
    model = LMRerank(LMRerankParams(**TINY))
    model.attach_retrievers(retrievers(data))
    report = model.fit(data)
    # The retriever is chosen on valid, and the report carries its ceiling.
    assert report.params["retriever"] in ("popularity", "ease", "ease+popularity", "popularity+ease")
    assert 0.0 <= report.params["retriever_recall_at_n_valid"] <= 1.0
    assert report.params["blend"] in TINY["blend_grid"]
    assert report.params["trainable_lm_parameters"] > 0
    assert abs(report.params["valid_ndcg_at_10_check"] - report.valid_ndcg_at_10) < 1e-6  # fast grid == evaluate()

    users = np.arange(data.n_users)
    histories = data.histories("train")
    scores = masked_scores(model, users, histories)
    candidates = model.candidates(users, histories)[1]
    best, _ = top_k(scores, TINY["candidates"])
    # The final top-N is exactly the retriever's candidate set (reordered), seen items never among them.
    assert all(set(b) == set(c) for b, c in zip(best, candidates))
    assert all(not set(b) & set(histories[u]) for u, b in zip(users, best))

    path = tmp_path / "artifact"
    path.mkdir()
    model.save(path)
    loaded = LMRerank.load(path)
    np.testing.assert_allclose(loaded.score(users, histories), model.score(users, histories), rtol=1e-5, atol=1e-5)


def test_zero_shot_and_prompt_tuning_modes(tmp_path):
    data = themed_split()
    fitted = retrievers(data)
    zero = LMRerank(LMRerankParams(**TINY, ranker="zero_shot", retriever="ease"))
    zero.attach_retrievers(fitted)
    report = zero.fit(data)
    assert report.params["retriever"] == "ease" and report.params["trainable_lm_parameters"] == 0
    assert len(report.curve) == 1  # no training epochs
    soft = LMRerank(LMRerankParams(**TINY, ranker="prompt_tuning", retriever="ease"))
    soft.attach_retrievers(fitted)
    assert 0 < soft.fit(data).params["trainable_lm_parameters"] < 20_000  # virtual tokens only


def test_missing_retriever_says_what_to_materialize():
    data = themed_split()
    model = LMRerank(LMRerankParams(**TINY, retriever="sasrec"))
    popularity = Popularity()
    popularity.fit(data)
    model.attach_retrievers({"popularity": popularity})
    with pytest.raises(ValueError, match="'sasrec' is not trained"):
        model.fit(data)
    with pytest.raises(ValueError, match="materialize one of"):
        LMRerank(LMRerankParams(**TINY)).fit(themed_split())


def test_blended_retriever_is_the_mean_log_softmax_and_round_trips(tmp_path):
    data = themed_split()
    fitted = retrievers(data)
    model = LMRerank(LMRerankParams(**TINY, ranker="zero_shot", retriever="ease+popularity"))
    model.attach_retrievers(fitted)
    assert model.fit(data).params["retriever"] == "ease+popularity"
    users = np.arange(data.n_users)
    histories = data.histories("train")
    expected = sum(torch.log_softmax(torch.from_numpy(np.asarray(fitted[n].score(users, histories), dtype=np.float32)), 1)
                   for n in ("ease", "popularity")) / 2
    np.testing.assert_allclose(model.retriever.score(users, histories), expected.numpy(), rtol=1e-5, atol=1e-6)
    path = tmp_path / "artifact"
    path.mkdir()
    model.save(path)
    loaded = LMRerank.load(path)
    assert loaded.retriever_name == "ease+popularity" and sorted(loaded.retriever.members) == ["ease", "popularity"]
    np.testing.assert_allclose(loaded.score(users, histories), model.score(users, histories), rtol=1e-5, atol=1e-5)
