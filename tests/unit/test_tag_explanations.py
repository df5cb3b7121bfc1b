"""Tag references for the explanation task: the per-user time split, the most-frequent-tag baseline, GenerativeP5
trained on user-written targets (real MiniLM, a few real steps), and the real ml-latest-small tags.csv."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec_assets.evaluation.tag_explanations import (blend, explanation_metrics, hallucinated, item_features,
                                                      latest_per_user, load_tags, most_frequent_tag, tag_pairs)
from lmrec_assets.models.generative_p5 import GenerativeP5, GenerativeP5Params
from tests.unit.test_generative_p5 import TINY
from tests.unit.test_lm_models import themed_split

SHARED_DATA = Path(os.environ.get("LMREC_SHARED_DATA") or Path(__file__).parents[2].parent / "shared" / "data")


def hand_made_tags() -> pd.DataFrame:
    rows = [  # userId, movieId, tag, timestamp
        ("1", "10", "Funny", 100), ("1", "10", "funny ", 101), ("1", "10", "Dark  Comedy", 99),  # one pair, 2 tags
        ("1", "20", "space", 200), ("1", "30", "funny", 300), ("1", "40", "space", 300),  # 40 ties 30: file order
        ("1", "50", "gore", 150),
        ("2", "20", "space", 50), ("2", "20", "classic", 60), ("2", "30", "dark comedy", 70),
        ("3", "30", "action", 10),  # a user with one pair: it is held out
        ("4", "30", "action", 20), ("4", "50", "gore", 30),
        ("9", "10", "unknown user", 5), ("1", "99", "unknown item", 5),
    ]
    return pd.DataFrame(rows, columns=["userId", "movieId", "tag", "timestamp"])


def test_pairs_split_by_time_per_user_and_the_baseline():
    split = tag_pairs(hand_made_tags(), user_ids=["1", "2", "3", "4"], item_ids=["10", "20", "30", "40", "50"])
    assert split.dropped == {"empty tag": 0, "user not in the split": 1, "item not in the split": 1}
    pairs = split.pairs.set_index(["user", "item"])
    assert pairs.loc[(0, 0), "reference"] == "dark comedy, funny"  # time order, lower-cased, deduplicated
    # User 0 has 5 pairs (first tags at 99, 150, 200, 300, 300): round(0.2 × 5) = 1 held out, the latest; the 300
    # tie goes to file order, so item 40 (the row after item 30) is the latest. Users with 1 or 2 pairs: 1 held out.
    assert split.held_out.set_index("user").item.to_dict() == {0: 3, 1: 2, 2: 2, 3: 4}
    assert sorted(map(tuple, split.train[["user", "item"]].values.tolist())) == [(0, 0), (0, 1), (0, 2), (0, 4), (1, 1), (3, 2)]

    # Baseline. Item 40: never tagged in training → the overall top training tag ("funny" and "space" have 2 pairs
    # each → alphabetical: "funny"). Item 30: "funny" and "action" once each → "action". Item 50: "gore".
    held_out = split.held_out
    baseline = most_frequent_tag(split.train, held_out)
    assert baseline == ["funny", "action", "action", "gore"]

    vocabulary = sorted({t for tags in split.pairs.tags for t in tags})
    perfect = explanation_metrics(list(held_out.reference), held_out, vocabulary, normalise=str)
    assert perfect["fmr"] == 1.0 and perfect["bleu_1"] == pytest.approx(100) and perfect["rouge_l"] == pytest.approx(100)
    assert perfect["fcr"] == pytest.approx(4 / 6)  # space, dark comedy, action, gore of 6 tags
    scores = explanation_metrics(baseline, held_out, vocabulary, normalise=str)
    assert scores["fmr"] == pytest.approx(2 / 4) and scores["usr"] == pytest.approx(3 / 4)


def test_a_valid_split_off_the_training_pairs_takes_each_users_latest_by_the_same_rule():
    split = tag_pairs(hand_made_tags(), user_ids=["1", "2", "3", "4"], item_ids=["10", "20", "30", "40", "50"])
    valid = latest_per_user(split.train, 0.2)
    # User 0's training pairs in time order: items 0 (99), 4 (150), 1 (200), 2 (300) → round(0.8) = 1: item 2.
    assert split.train[valid][["user", "item"]].values.tolist() == [[0, 2], [1, 1], [3, 2]]


def test_a_tag_the_item_never_had_is_a_hallucination_and_genres_count_as_features():
    split = tag_pairs(hand_made_tags(), user_ids=["1", "2", "3", "4"], item_ids=["10", "20", "30", "40", "50"])
    genres = [["Comedy"], ["Sci-Fi"], ["Action", "Comedy"], [], ["(no genres listed)"]]
    features = item_features(split.pairs, genres)  # every pair, held-out ones too: the item's real tags
    assert features[2] == {"action", "comedy", "funny", "dark comedy"} and features[4] == {"gore"}
    flags = hallucinated(["funny, comedy", "space", "gore,", "", "action, space"], [0, 1, 4, 3, 2], features, str)
    assert flags.tolist() == [False, False, False, False, True]  # "space" was never a tag of item 30


def test_the_blend_standardises_both_scores_and_never_picks_what_the_lm_cannot_write():
    lm, cosine = np.array([-1.0, -2.0, -np.inf, -3.0]), np.array([0.1, 0.2, 0.9, 0.8])
    assert np.argmax(blend(lm, cosine, 0.0)) == 0  # the LM alone
    scored = blend(lm, cosine, 4.0)
    assert np.isneginf(scored[2]) and np.argmax(scored) == 3  # similarity dominates among what the LM can write
    assert np.argmax(blend(lm, cosine, np.inf)) == 2  # similarity alone: every candidate
    assert np.allclose(blend(lm * 10, cosine * 3, 1.0), blend(lm, cosine, 1.0))  # scale-free


def test_valid_explanations_pick_the_epoch_that_explains_them_best_and_are_never_trained_on():
    torch.set_num_threads(1)
    data = themed_split()
    train = {(u, int(data.train_sequences[u][1])): "zebra, marmalade" for u in range(4)}
    valid = {(u, int(data.train_sequences[u][2])): "zebra, saxophone" for u in range(4, 6)}  # "saxophone": unwritable
    valid[(6, int(data.train_sequences[6][2]))] = "marmalade, zebra"
    model = GenerativeP5(GenerativeP5Params(**{**TINY, "max_epochs": 3, "max_steps": 0}))
    report = model.fit(data, user_explanations=train, item_explanations=False, valid_explanations=valid)
    nll = [row["valid_explanation_nll"] for row in report.curve]
    assert len(nll) == 3 and report.params["checkpoint_epoch"] == 1 + int(np.argmin(nll))
    assert report.params["valid_explanations"] == 3
    saxophone = model.tokenizer("saxophone", add_special_tokens=False)["input_ids"]
    assert not set(saxophone) <= set(model.vocab.tolist())  # valid text never enters the trained vocabulary
    # The kept weights are that epoch's: the finished model explains the valid pairs exactly as well.
    pairs = [(model.explanation_prompt(data.train_sequences[u], i, user=u), text) for (u, i), text in sorted(valid.items())]
    assert model._explanation_nll(pairs) == pytest.approx(min(nll), rel=1e-5)


def test_generative_p5_trains_on_user_explanations_and_their_tokens_enter_the_vocabulary(tmp_path):
    torch.set_num_threads(1)
    data = themed_split()
    targets = {(0, int(data.train_sequences[0][1])): "zebra, marmalade", (3, int(data.valid_items[3])): "saxophone"}
    model = GenerativeP5(GenerativeP5Params(**{**TINY, "max_epochs": 1, "max_steps": 3}))
    report = model.fit(data, user_explanations=targets, item_explanations=False)
    assert report.params["steps"] == 3 and report.params["user_explanations"] == 2
    tag_tokens = model.tokenizer("zebra, marmalade saxophone", add_special_tokens=False)["input_ids"]
    assert set(tag_tokens) <= set(model.vocab.tolist())
    description_only = model.tokenizer("astronauts", add_special_tokens=False)["input_ids"]  # item_text, not trained
    assert not set(description_only) & set(model.vocab.tolist())

    # The prompt's history is what came before the item in the train sequence (all of it when it is not there).
    item = int(data.train_sequences[0][1])
    assert model.explanation_prompt(data.train_sequences[0], item) == (
        f"Explain why the user who watched {data.item_titles[data.train_sequences[0][0]]} would enjoy {data.item_titles[item]}")
    prompt = model.explanation_prompt(data.train_sequences[3], int(data.valid_items[3]))
    assert all(data.item_titles[i] in prompt for i in data.train_sequences[3])
    assert isinstance(model.text(model.generate([prompt], 6)[0]), str)

    model.save(tmp_path)
    np.testing.assert_array_equal(GenerativeP5.load(tmp_path).vocab, model.vocab)


def test_tag_explanation_prompts_are_grounded_and_never_hold_their_own_answer(tmp_path):
    torch.set_num_threads(1)
    data = themed_split()
    space, cooking = 0, 5  # items: "Star Voyage" (space), "The Pasta Kitchen" (cooking)
    targets = {(0, space): "classic, space", (1, space): "space, funny", (1, cooking): "funny",
               **{(2, i): "in my queue" for i in range(6, 10)}}  # a prolific user
    params = GenerativeP5Params(**{**TINY, "max_epochs": 1, "max_steps": 1}, explanation_pairs_per_user=2)
    model = GenerativeP5(params)
    model.fit(data, user_explanations=targets, item_explanations=False)

    # A training target's prompt: the item's title and features, others' tags for the item, the user's tags on other
    # items, with the pair's own tags left out (user 1 wrote "space, funny" on item 0: what is left is user 0's
    # "classic, space" and user 1's "funny" on the cooking film).
    prompt = model.explanation_prompt(data.train_sequences[1], space, user=1, leave_out="space, funny")
    assert prompt == ("Star Voyage (A science-fiction film about astronauts, spaceships and distant planets.). "
                      "Tagged by others: classic, space. This user's tags: funny. In the user's words, why?")
    # A held-out pair reads every training tag of the item and the user, most frequent first.
    held_out = model.explanation_prompt(data.train_sequences[1], 1, user=1)
    assert "Tagged by others: none" in held_out and "This user's tags: funny, space" in held_out
    # Without a user: the item-explanation prompt the published explanations use.
    assert model.explanation_prompt(data.train_sequences[1], space).startswith("Explain why the user who watched")

    # The prolific user's 4 pairs: at most 2 per epoch.
    drawn = [prompt for prompt, _ in model._examples(data, np.random.default_rng(0)) if "in my queue" in prompt or "Tagged by" in prompt]
    assert sum("This user's tags: in my queue" in p for p in drawn) == 2 and len(drawn) == 2 + 3

    model.save(tmp_path)
    assert GenerativeP5.load(tmp_path).explanation_prompt(data.train_sequences[1], 1, user=1) == held_out


def test_candidate_logprobs_are_the_sequence_log_likelihoods_the_training_loss_sees():
    torch.set_num_threads(1)
    data = themed_split()
    targets = {(0, 0): "classic, space", (1, 5): "funny"}
    model = GenerativeP5(GenerativeP5Params(**{**TINY, "max_epochs": 1, "max_steps": 1}))
    model.fit(data, user_explanations=targets, item_explanations=False)
    prompt = model.explanation_prompt(data.train_sequences[1], 0, user=1)
    logp = model.candidate_logprobs(prompt, ["classic, space", "funny", "saxophone"])
    assert np.isneginf(logp[2])  # "saxophone" has tokens outside the output vocabulary: the model cannot write it
    model.model.eval()
    with torch.no_grad():  # the training loss is the mean token cross-entropy of the same teacher-forced sequence
        loss = float(model._loss([(prompt, [model._tokens("funny", 24)])]))
    n_tokens = len(model._tokens("funny", 24)) + 1  # + eos
    assert logp[1] == pytest.approx(-loss * n_tokens, rel=1e-3)


@pytest.mark.skipif(not (SHARED_DATA / "ml-latest-small" / "tags.csv").is_file(),
                    reason=f"{SHARED_DATA}/ml-latest-small/tags.csv is absent (set LMREC_SHARED_DATA to shared/data)")
def test_real_tags_csv_loads_and_splits():
    tags = load_tags(SHARED_DATA / "ml-latest-small" / "tags.csv")
    assert len(tags) == 3683 and tags.tag.str.len().min() > 0  # README: 3,683 tags; CRLF stripped
    assert not tags.tag.str.endswith("\r").any()
    movies = pd.read_csv(SHARED_DATA / "ml-latest-small" / "movies.csv", dtype={"movieId": str})
    split = tag_pairs(tags, user_ids=sorted(tags.userId.unique()), item_ids=movies.movieId)
    assert sum(split.dropped.values()) == 0 and len(split.pairs) == 1775
    assert split.held_out.user.nunique() == split.pairs.user.nunique() == 58  # every tagging user has a held-out pair
    latest_train = split.train.groupby("user").first_timestamp.max()
    earliest_held = split.held_out.groupby("user").first_timestamp.min()
    assert (latest_train <= earliest_held.reindex(latest_train.index)).all()  # held out by time
