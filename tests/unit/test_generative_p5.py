"""The generative recommender: trie-constrained decoding only emits catalogue titles, real training steps lower the
loss, artifacts reload to the same scores, and the generation metrics run on it (real MiniLM, no mocks)."""

import numpy as np
import pytest
import torch

from lmrec_assets.evaluation.generation_assets import generation_rows
from lmrec_assets.models.generative_p5 import GenerativeP5, GenerativeP5Params, _DECODE_CACHE
from lmrec_assets.models.title_trie import TitleTrie, constrained_beam_search
from tests.unit.test_lm_models import THEMES, themed_split

TINY = dict(max_epochs=3, max_minutes=1.0, examples_per_user=2, recent_positions=4, batch_size=8, beam_width=4,
            fit_valid_users=0, max_title_tokens=6, max_explanation_tokens=12, bf16=False)


def random_catalogue(rng: np.random.Generator, n_items: int, vocab: int) -> list[list[int]]:
    """Token sequences with shared prefixes, duplicates and titles that are prefixes of others (eos = token 0)."""
    titles = [list(rng.integers(1, vocab, size=rng.integers(1, 5))) for _ in range(n_items)]
    titles += [titles[0], titles[1][:1]]  # an exact duplicate and a one-token prefix of another title
    return titles


def test_constrained_beam_search_only_emits_unseen_catalogue_titles():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        vocab = int(rng.integers(3, 12))
        titles = random_catalogue(rng, int(rng.integers(2, 25)), vocab)
        trie = TitleTrie.build(titles, eos=0)
        as_tuples = {tuple(t) for t in titles}
        n_rows, width = 3, int(rng.integers(1, 8))
        seen = [rng.choice(len(titles), size=rng.integers(0, len(titles)), replace=False) for _ in range(n_rows)]

        def step(parents, tokens):  # random model logits
            return torch.log_softmax(torch.as_tensor(rng.normal(size=(n_rows * width, vocab)) * 3, dtype=torch.float32), -1)

        items, scores = constrained_beam_search(trie, step, n_rows, width, seen)
        for row in range(n_rows):
            owners = {t: {i for i, other in enumerate(titles) if tuple(other) == t} for t in as_tuples}
            unseen_titles = {t for t, items_of in owners.items() if not items_of <= set(seen[row].tolist())}
            leaves = {tuple(titles[i]) for i in items[row]}
            assert leaves <= as_tuples and leaves <= unseen_titles  # catalogue titles, none fully seen
            assert len(leaves) == min(width, len(unseen_titles))  # distinct titles fill the width when there are enough
            # Every item sharing a produced title is returned, each with that title's score.
            for title in leaves:
                same = [i for i in range(len(titles)) if tuple(titles[i]) == title]
                assert set(same) <= set(items[row].tolist())
            assert np.all(np.diff(scores[row]) <= 1e-6) and np.all(scores[row] <= 0)


def test_training_lowers_the_loss_and_the_artifact_reloads_to_the_same_scores(tmp_path):
    torch.set_num_threads(1)
    data = themed_split()
    model = GenerativeP5(GenerativeP5Params(**TINY))
    report = model.fit(data)
    losses = [row["loss"] for row in report.curve]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert report.trainable_parameters > 0

    users = np.arange(6)
    scores = model.score(users, data.train_sequences)
    beams = scores > -900  # beam items; the rest is the popularity floor
    assert (beams.sum(axis=1) >= TINY["beam_width"]).all()
    assert not beams[np.arange(6)[:, None], np.stack(data.train_sequences[:6])].any()  # seen titles never decoded

    # A beam's score is the title's log-probability under teacher forcing (the cached, reordered decoding is exact).
    prompt = model.prompts(data.train_sequences, np.array([0]), "sequential")[0]
    best = int(np.argmax(scores[0]))
    title = [*model.tokenizer(data.item_titles[best], add_special_tokens=False)["input_ids"][: TINY["max_title_tokens"]], model.eos]
    source = model.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        logits = model.model.get_base_model()(input_ids=source["input_ids"], attention_mask=source["attention_mask"],
                                              decoder_input_ids=torch.tensor([[model.start_token, *title[:-1]]])).logits
    forced = torch.log_softmax(logits[0], -1)[torch.arange(len(title)), torch.as_tensor(model._to_output[title])].sum()
    assert scores[0, best] == pytest.approx(float(forced), abs=1e-3)

    model.save(tmp_path)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() and (tmp_path / "params.json").exists()
    _DECODE_CACHE.clear()  # decode again from the reloaded weights
    np.testing.assert_allclose(GenerativeP5.load(tmp_path).score(users, data.train_sequences), scores, atol=1e-4)

    categories = [[theme] for theme, titles in THEMES.items() for _ in titles]
    rows = generation_rows(model, data, categories, n_users=6, seed=0)
    metrics = rows.set_index(["split", "task", "template", "metric"])["value"]
    assert {"bleu_1", "bleu_4", "rouge_1", "rouge_2", "rouge_l", "usr", "fmr", "fcr", "div"} <= set(rows.metric)
    assert set(rows.template) == {"sequential", "sequential_unseen", "explanation"}
    assert 0 <= metrics["valid", "sequential", "sequential", "hallucination_rate"] <= 1


def test_full_finetune_saves_safetensors_and_reloads(tmp_path):
    torch.set_num_threads(1)
    data = themed_split()
    model = GenerativeP5(GenerativeP5Params(**{**TINY, "max_epochs": 1, "max_steps": 2}, mode="full", decoder_layers=2, encoder_layers=2))
    model.fit(data)
    model.save(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    users = np.arange(4)
    scores = model.score(users, data.train_sequences)
    _DECODE_CACHE.clear()
    np.testing.assert_allclose(GenerativeP5.load(tmp_path).score(users, data.train_sequences), scores, atol=1e-4)
