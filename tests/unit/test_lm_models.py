"""The LM recommenders with the real bundled MiniLM on a tiny themed catalogue: real training steps, no mocks."""

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
from dagster import materialize
from peft import PeftModel
from safetensors.numpy import load_file
from transformers import AutoModel

from lmrec_assets.models.base import SplitData
from lmrec_assets.models.embeddings import item_embeddings
from lmrec_assets.models.lm_finetune import LMFinetune, LMFinetuneParams
from lmrec_assets.models.lm_training import ItemHead, batch_loss, valid_ndcg
from lmrec_assets.models.prompt_tuning import LMPromptTuning, LMPromptTuningParams
from lmrec_assets.models.text import BUNDLED_LM, encode_texts, resolve_lm, text_key
from lmrec_assets.models.zero_shot import ZeroShotParams, ZeroShotPrompt
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource

THEMES = {
    "space": ["Star Voyage", "Galaxy Raiders", "Moon Base Alpha", "Rocket to Mars", "Orbit of Saturn"],
    "cooking": ["The Pasta Kitchen", "Baking Bread", "Chef's Table", "Sushi Master", "Soup for Winter"],
    "horses": ["Wild Stallion", "The Ranch Rider", "Pony Express", "Racehorse Dreams", "Mustang Valley"],
}
DESCRIPTION = {
    "space": "A science-fiction film about astronauts, spaceships and distant planets.",
    "cooking": "A film about chefs, recipes and cooking delicious food.",
    "horses": "A western film about cowboys riding horses across the prairie.",
}
TINY = dict(max_epochs=3, patience=5, examples_per_user=2, recent_positions=4, batch_size=8, max_minutes=1.0)


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "data"))  # the text-embedding cache lives under it
    torch.set_num_threads(1)


def themed_split(n_users: int = 24) -> SplitData:
    """Each user watches 5 items of one theme (shuffled): 3 for train, then valid, then test."""
    titles = [t for theme in THEMES.values() for t in theme]
    texts = [f"{t}. {DESCRIPTION[theme]}" for theme, ts in THEMES.items() for t in ts]
    rng = np.random.default_rng(0)
    sequences, valid, test = [], [], []
    for u in range(n_users):
        items = 5 * (u % 3) + rng.permutation(5)
        sequences.append(items[:3].astype(np.int64))
        valid.append(items[3])
        test.append(items[4])
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(len(titles))]),
        item_text=texts,
        item_titles=titles,
        train_sequences=sequences,
        valid_items=np.array(valid),
        test_items=np.array(test),
    )


def test_zero_shot_ranks_same_theme_items_first(tmp_path):
    data = themed_split()
    model = ZeroShotPrompt(ZeroShotParams())
    model.fit(data)
    history = [np.array([0, 1, 2])]  # three space films
    scores = model.score(np.array([0]), history)[0]
    assert scores[3:5].min() > scores[5:].max()  # the unseen space films beat every cooking and horse film

    model.save(tmp_path)
    np.testing.assert_allclose(ZeroShotPrompt.load(tmp_path).score(np.array([0]), history)[0], scores, rtol=1e-6)


def test_encode_texts_cache_encodes_only_new_texts():
    texts = themed_split().item_text
    first, n_first = encode_texts(texts)
    again, n_again = encode_texts(texts)
    _, n_one_more = encode_texts([*texts, "A brand new documentary about bees."])
    assert (n_first, n_again, n_one_more) == (len(texts), 0, 1)
    np.testing.assert_array_equal(first, again)


def test_encode_texts_reads_parts_another_process_added(tmp_path):
    encode_texts(themed_split().item_text)  # this process has read the folder's parts
    folder = next((tmp_path / "data" / "cache" / "embeddings").iterdir())
    planted = np.full(384, 1 / np.sqrt(384), dtype=np.float32)  # written by "another process": not an LM vector
    pd.DataFrame({"key": [text_key(BUNDLED_LM, "bees")], "vector": [planted]}).to_parquet(folder / "part-99999-other.parquet")
    vectors, n_new = encode_texts(["bees"])
    assert n_new == 0
    np.testing.assert_array_equal(vectors[0], planted)


def test_item_embeddings_asset_reencodes_only_changed_items(tmp_path):
    warehouse = tmp_path / "wh.duckdb"
    data = themed_split()
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.dim_items (item_id varchar, item_text varchar)")
        con.executemany("insert into marts.dim_items values (?, ?)", list(zip(data.item_ids, data.item_text)))
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "artifacts": ArtifactStoreResource(data_dir=str(tmp_path))}

    def run(item_blocks: int = 1) -> dict:
        config = {"ops": {"item_embeddings": {"ops": {"plan_item_encoding": {"config": {"item_blocks": item_blocks}}}}}}
        result = materialize([item_embeddings], resources=resources, run_config=config)
        return {k: v.value for k, v in result.asset_materializations_for_node("item_embeddings")[0].metadata.items()}

    def vectors(version: str) -> np.ndarray:
        return load_file(str(tmp_path / "artifacts" / "item_embeddings" / version / "embeddings.safetensors"))["embeddings"]

    first = run()
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.dim_items set item_text = 'A documentary about bees.' where item_id = 'i0'")
    second = run(item_blocks=3)  # three encoding steps: only the block holding i0 encodes anything
    assert (first["n_newly_encoded"], first["n_items"], first["dim"], first["blocks"]) == (15, 15, 384, 1)
    assert (second["n_newly_encoded"], second["n_from_cache"], second["blocks"]) == (1, 14, 3)
    assert first["version"] != second["version"]
    changed = [i for i, item in enumerate(sorted(data.item_ids)) if item == "i0"]
    unchanged = np.setdiff1d(np.arange(15), changed)
    np.testing.assert_array_equal(vectors(first["version"])[unchanged], vectors(second["version"])[unchanged])
    assert run(item_blocks=3)["outcome"].startswith("unchanged")


def test_lora_lowers_the_loss_and_saves_a_standard_peft_adapter(tmp_path):
    data = themed_split()
    model = LMFinetune(LMFinetuneParams(**TINY, lr=5e-3, head_lr=1e-2))
    report = model.fit(data)
    losses = [row["loss"] for row in report.curve[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # LoRA A, B on q and v in 6 layers + item bias + the history term's scale
    assert report.trainable_parameters == 6 * 2 * 2 * 8 * 384 + 15 + 1

    model.save(tmp_path)
    adapter = PeftModel.from_pretrained(AutoModel.from_pretrained(resolve_lm()), tmp_path / "adapter")
    assert any("lora_A" in name for name, _ in adapter.named_parameters())
    users = np.arange(6)
    np.testing.assert_allclose(LMFinetune.load(tmp_path).score(users, data.train_sequences), model.score(users, data.train_sequences), atol=1e-4)


def test_text_weight_is_chosen_on_valid_and_no_grid_point_beats_it():
    data = themed_split()
    model = LMFinetune(LMFinetuneParams(**{**TINY, "max_epochs": 1}, max_steps=2))
    report = model.fit(data)
    chosen = report.params["text_weight"]
    assert chosen in model.params.text_weight_grid and float(model.head.text_weight) == pytest.approx(chosen)
    # The reported figure is evaluate()'s with the chosen w (same protocol), and no other w does better on valid,
    # the bias alone (w = 0) included.
    assert valid_ndcg(model, data) == pytest.approx(report.valid_ndcg_at_10)
    for weight in model.params.text_weight_grid:
        model.head.text_weight.fill_(weight)
        assert valid_ndcg(model, data) <= report.valid_ndcg_at_10 + 1e-9


def test_scoring_memoises_prompt_vectors_of_final_weights_only():
    data = themed_split()
    # A seed no other test trains with: equal weights would share the process's memo (and correctly so).
    model = LMFinetune(LMFinetuneParams(**{**TINY, "max_epochs": 1}, max_steps=2, seed=101))
    model.fit(data)
    passes = []
    model.encoder.register_forward_hook(lambda *_: passes.append(1))
    users, histories = np.arange(len(data.user_ids)), data.train_sequences
    first = model.score(users, histories)
    n_passes = len(passes)
    again = model.score(users, histories)
    assert n_passes > 0 and len(passes) == n_passes  # the second scoring reads the memo: no LM pass
    np.testing.assert_array_equal(first, again)
    with torch.no_grad():  # the plain path: one unsorted batch through `embed`, nothing memoised
        plain = model.head(model.embed(model.user_prompts(users, histories)), list(histories)).numpy()
    np.testing.assert_allclose(first, plain, atol=1e-3)

    # Other weights, another digest: what was memoised for the old weights is never read for the new ones.
    digest = model.weights_digest
    with torch.no_grad():
        next(q for n, q in model.encoder.named_parameters() if "lora_B" in n).add_(0.1)
    model.finalise()
    assert model.weights_digest != digest
    model.score(users, histories)
    assert len(passes) > n_passes


def test_full_finetune_saves_safetensors_and_reloads(tmp_path):
    data = themed_split()
    model = LMFinetune(LMFinetuneParams(**{**TINY, "max_epochs": 1}, mode="full", max_steps=2))
    report = model.fit(data)
    assert report.params["steps"] == 2
    assert report.params["trainable_lm_parameters"] == sum(p.numel() for p in AutoModel.from_pretrained(resolve_lm()).parameters())

    model.save(tmp_path)
    assert (tmp_path / "lm" / "model.safetensors").exists()
    users = np.arange(6)
    np.testing.assert_allclose(LMFinetune.load(tmp_path).score(users, data.train_sequences), model.score(users, data.train_sequences), atol=1e-4)


def test_prompt_tuning_trains_only_the_virtual_tokens(tmp_path):
    data = themed_split()
    model = LMPromptTuning(LMPromptTuningParams(**{**TINY, "max_epochs": 1}, num_virtual_tokens=12, max_steps=3))
    lm_before = AutoModel.from_pretrained(resolve_lm()).state_dict()
    report = model.fit(data)
    assert report.params["steps"] == 3 and report.params["trainable_lm_parameters"] == 12 * 384
    base = model.encoder.get_base_model().state_dict()
    assert all(torch.equal(base[name], value) for name, value in lm_before.items())

    # Gradients reach the virtual tokens and nothing else in the LM.
    model.encoder.train()
    batch_loss(model, data, np.array([[0, 2], [1, 1]])).backward()
    with_grad = {name for name, p in model.encoder.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == {"prompt_encoder.default.embedding.weight"}

    model.save(tmp_path)
    users = np.arange(6)
    np.testing.assert_allclose(LMPromptTuning.load(tmp_path).score(users, data.train_sequences), model.score(users, data.train_sequences), atol=1e-4)


def test_item_head_adds_the_best_text_match_among_the_recent_items():
    vectors = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.2]]), dim=-1)
    head = ItemHead(vectors, temperature=0.5, item_bias=False, history_items=2, history_scale=3.0)
    users = torch.zeros(2, 2)  # no prompt evidence: only the history term is left
    logits = head(users, [np.array([3, 0, 1]), np.array([], dtype=np.int64)])
    # Row 0: the 2 newest items are 0 and 1; each candidate gets 3 · its best cosine to one of them.
    expected = 3.0 * torch.stack([vectors[[0, 1]] @ v for v in vectors]).amax(dim=1)
    torch.testing.assert_close(logits[0], expected)
    torch.testing.assert_close(logits[1], torch.full((4,), -3.0))  # no history: no evidence (cosine -1), same for all
    no_history = ItemHead(vectors, temperature=0.5, item_bias=False)
    torch.testing.assert_close(no_history(users, [np.array([0]), np.array([1])]), torch.zeros(2, 4))
