"""Generation metrics on fixed strings: hand-computed values and the reference implementations agree."""

import math

import pytest
import sacrebleu

from lmrec_assets.evaluation.generation import bleu, feature_metrics, rouge, text_metrics

HYPOTHESES = ["the cat sat on the mat", "a western about horses", "the cat ran"]
REFERENCES = ["the cat sat on the red mat", "a film about horses", "the cat ran"]


def test_bleu_matches_sacrebleu_and_hand_counts():
    assert bleu(HYPOTHESES, REFERENCES, 4) == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    # BLEU-1 = clipped unigram precision × brevity penalty: 6/6 + 3/4 + 3/3 matched = 12 of 13 hypothesis words,
    # hypothesis length 13 vs reference 14: BP = exp(1 - 14/13).
    assert bleu(HYPOTHESES, REFERENCES, 1) == pytest.approx(100 * 12 / 13 * math.exp(1 - 14 / 13))
    assert bleu(["four same words here"], ["four same words here"], 4) == pytest.approx(100)


def test_rouge_f1_by_hand():
    scores = rouge(["the cat sat"], ["the cat ran"])
    # unigrams 2/3 both ways; bigrams {the cat} of 2; LCS "the cat" = 2 of 3.
    assert scores == pytest.approx({"rouge_1": 100 * 2 / 3, "rouge_2": 50.0, "rouge_l": 100 * 2 / 3})


def test_usr_and_feature_metrics_by_hand():
    sentences = ["A western with horses.", "A western with horses.", "Space and comedy.", "Nothing here."]
    assert text_metrics(sentences, sentences)["usr"] == pytest.approx(3 / 4)
    truth = [["Western"], ["Drama"], ["Comedy", "Sci-Fi"], ["Drama"]]
    vocabulary = {"Western", "Drama", "Comedy", "Sci-Fi", "Horror"}
    metrics = feature_metrics(sentences, truth, vocabulary)
    # Mentioned: {western}, {western}, {comedy}, {} → FMR hits 1, 0, 1, 0; FCR 2 of 5; DIV: one pair shares 1 of 6.
    assert metrics == pytest.approx({"fmr": 0.5, "fcr": 2 / 5, "div": 1 / 6})
    with pytest.raises(ValueError):
        bleu(["one"], [], 4)
