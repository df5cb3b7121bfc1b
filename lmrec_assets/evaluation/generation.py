"""Text-generation metrics for generative recommenders, as PEPLER reports them (Li, Zhang, Chen, ACM TOIS 2023).

- BLEU-1 / BLEU-4: corpus BLEU with sacrebleu (`max_ngram_order` 1 / 4), 0-100 as PEPLER reports them. PEPLER uses
  its own `compute_bleu` on whitespace tokens; sacrebleu's 13a tokenisation and brevity penalty are the standard
  reproducible version of the same corpus statistic.
- ROUGE-1 / ROUGE-2 / ROUGE-L F1: rouge-score (`RougeScorer`, no stemming), mean over sentence pairs, 0-100.
- USR, FMR, FCR, DIV: the definitions of PEPLER's utils.py, implemented once in `explanations.py` (features are
  category phrases matched as whole words); FMR here takes a *set* of ground-truth features per sentence (a hit:
  any of them is mentioned), since an item has several genres where a PEPLER review has one aspect.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from lmrec_assets.evaluation.explanations import feature_diversity, mentioned_features, unique_sentence_ratio


def bleu(hypotheses: Sequence[str], references: Sequence[str], max_order: int) -> float:
    """Corpus BLEU-n (0-100) of one hypothesis per reference."""
    from sacrebleu.metrics import BLEU

    _check(hypotheses, references)
    return float(BLEU(max_ngram_order=max_order).corpus_score(list(hypotheses), [list(references)]).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (0-100) over (hypothesis, reference) pairs."""
    from rouge_score.rouge_scorer import RougeScorer

    _check(hypotheses, references)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    scores = [scorer.score(reference, hypothesis) for hypothesis, reference in zip(hypotheses, references)]
    return {f"rouge_{name[5:].lower()}": 100 * float(np.mean([s[name].fmeasure for s in scores]))
            for name in ("rouge1", "rouge2", "rougeL")}


def text_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU-1, BLEU-4, ROUGE-1/2/L F1 and USR of generated sentences against one reference each."""
    return {"bleu_1": bleu(hypotheses, references, 1), "bleu_4": bleu(hypotheses, references, 4),
            **rouge(hypotheses, references), "usr": unique_sentence_ratio(list(hypotheses))}


def feature_metrics(
    sentences: Sequence[str], ground_truth: Sequence[Collection[str]], vocabulary: Collection[str]
) -> dict[str, float]:
    """FMR (ground-truth feature named), FCR (vocabulary named at least once ÷ vocabulary) and DIV (mean number of
    features two sentences share; lower is more diverse), PEPLER's definitions over `mentioned_features`."""
    if len(sentences) != len(ground_truth):
        raise ValueError(f"{len(sentences)} sentences but {len(ground_truth)} ground-truth feature sets")
    found = mentioned_features(list(sentences), vocabulary)
    return {
        "fmr": float(np.mean([bool(f & set(truth)) for f, truth in zip(found, ground_truth)])),
        "fcr": len(set().union(*found)) / len(set(vocabulary)),
        "div": feature_diversity(found),
    }


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no sentences")
