"""The grounding check of LM-written explanations: a sentence naming a category its item lacks is rejected (the row
keeps its template), one naming only the item's own categories passes; the model's spelling is mapped back to the
catalogue's before the check (real MiniLM tokenizer, real Catalogue)."""

import numpy as np
import pandas as pd

from lmrec_assets.evaluation.published_explanations import (
    DEGENERATE,
    HALLUCINATION,
    UNGROUNDED,
    LM_GENERATED,
    PASSED,
    TEMPLATE,
    Catalogue,
    check_generated,
    explanation_quality,
    readable,
)
from lmrec_assets.models.generative_p5 import GenerativeP5, GenerativeP5Params

CATALOGUE = Catalogue(
    index=pd.Index(["heat", "toy_story", "alien"]),
    titles=["Heat", "Toy Story", "Alien"],
    categories=[["Crime", "Thriller"], ["Animation", "Children's", "Comedy"], ["Horror", "Sci-Fi"]],
    embeddings=np.eye(3, dtype=np.float32),
)


def test_a_sentence_naming_a_category_the_item_lacks_is_a_hallucination():
    sentences = [
        "Genres: crime, thriller. A heist goes wrong.",  # Heat's own categories
        "Genres: crime, comedy. A heist goes wrong.",  # comedy: not Heat's
        "Genres: horror, sci-fi. Something is aboard the ship.",  # Alien's own, multi-word spelling
        "Genres: animation, sci-fi. Toys come to life.",  # sci-fi: not Toy Story's
        "Genres: thriller. Blackmail.",  # one of Heat's two: enough
    ]
    items = np.array([0, 0, 2, 1, 0])
    assert check_generated(sentences, [True] * 5, items, CATALOGUE) == [PASSED, HALLUCINATION, PASSED, HALLUCINATION, PASSED]


def test_a_sentence_naming_none_of_the_items_categories_is_ungrounded():
    # What a briefly trained model writes for every item: it contradicts nothing, but explains nothing checkable.
    assert check_generated(["Blackmail dec", "A film about a crew in deep space."], [True, True], np.array([0, 2]),
                           CATALOGUE) == [UNGROUNDED, UNGROUNDED]


def test_empty_unfinished_or_looping_sentences_are_degenerate():
    sentences = ["", "Genres: crime, thriller. A heist", "crime crime crime crime thriller", "Genres: crime."]  # Heat
    verdicts = check_generated(sentences, [True, False, True, True], np.zeros(4, dtype=int), CATALOGUE)
    assert verdicts == [DEGENERATE, DEGENERATE, DEGENERATE, PASSED]


def test_the_models_spelling_is_checked_in_the_catalogues():
    model = GenerativeP5(GenerativeP5Params())  # the tokenizer only: no weights are loaded
    spellings = {model.normalized(c, 24): c.lower() for c in CATALOGUE.vocabulary}
    assert spellings["sci - fi"] == "sci-fi" and spellings["children ' s"] == "children's"
    written = "genres : animation, children ' s, sci - fi. toys come to life."  # as the uncased model writes it
    sentence = readable(written, spellings)
    assert sentence == "Genres: animation, children's, sci-fi. Toys come to life."
    assert check_generated([sentence], [True], np.array([1]), CATALOGUE) == [HALLUCINATION]  # sci-fi is Alien's
    assert check_generated([readable("genres : animation, children ' s.", spellings)], [True], np.array([1]),
                           CATALOGUE) == [PASSED]


def test_quality_counts_generated_rejected_and_published_lm_sentences():
    explanations = pd.DataFrame({
        "model": ["generative_p5"] * 4 + ["ease"] * 2,
        "model_version": "v1",
        "user_id": "u1",
        "rank": [1, 2, 3, 4, 1, 2],
        "item_id": ["heat", "alien", "toy_story", "heat", "heat", "alien"],
        "explanation": ["Genres: crime, thriller.", "Because you watched Heat: also a thriller.",
                        "Similar to Heat, which you watched.", "Similar to Alien, which you watched.",
                        "Similar to Alien, which you watched.", "Similar to Heat, which you watched."],
        "explanation_source": [LM_GENERATED, TEMPLATE, TEMPLATE, TEMPLATE, TEMPLATE, TEMPLATE],
        "lm_verdict": [PASSED, HALLUCINATION, DEGENERATE, UNGROUNDED, None, None],
    })
    quality = explanation_quality(explanations, CATALOGUE, fmr=0.5, fmr_users=2).set_index("model")
    p5, ease = quality.loc["generative_p5"], quality.loc["ease"]
    assert (p5.n_lm_generated, p5.n_lm_published, p5.n_hallucinations_rejected, p5.n_ungrounded_rejected,
            p5.n_degenerate_rejected) == (4, 1, 1, 1, 1)
    assert p5.hallucination_rate_generated == 1 / 4 and p5.hallucination_rate_published == 0
    assert ease.n_lm_generated == 0 and np.isnan(ease.hallucination_rate_generated)
    assert np.isnan(ease.hallucination_rate_published)
