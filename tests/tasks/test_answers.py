"""Exact match and F1 of answers (xlmr_ds/tasks/answers.py): English against torchmetrics' SQuAD v1.1 metric on
the same predictions, and MLQA's language rules (articles, Unicode punctuation, character tokens for Chinese) as
a table of cases."""

import random

import pytest

from xlmr_ds.tasks.answers import answer_scores, answer_tokens

WORDS = ["the", "a", "an", "Paris", "paris", "river", "Seine", "in", "France", "capital", "of", "city", "old",
         "An", "THE", "(1789)", "1789", "north-west", "U.S.", "us", "café"]


def english_cases(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)

    def phrase():
        return " ".join(rng.choices(WORDS, k=rng.randint(1, 4))) + rng.choice(["", ".", ",", "!", "  "])

    return [phrase() for _ in range(n)], [[phrase() for _ in range(rng.randint(1, 3))] for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_english_scores_equal_torchmetrics_squad(seed):
    from torchmetrics.functional.text import squad

    predicted, gold = english_cases(300, seed)
    # One known difference, left out here: a prediction and an answer that both normalize to nothing (only
    # articles and punctuation) score F1 0 in SQuAD v1.1's and MLQA's scripts, which we follow, and 1 in
    # torchmetrics'. SCORE_CASES holds that case.
    kept = [i for i, (p, g) in enumerate(zip(predicted, gold))
            if answer_tokens(p, "en") and all(answer_tokens(a, "en") for a in g)]
    assert len(kept) > 200
    predicted, gold = [predicted[i] for i in kept], [gold[i] for i in kept]
    exact, f1 = answer_scores(predicted, gold, "en")
    reference = squad([{"prediction_text": p, "id": str(i)} for i, p in enumerate(predicted)],
                      [{"answers": {"answer_start": [0] * len(g), "text": g}, "id": str(i)} for i, g in enumerate(gold)])
    assert 0 < exact < f1 < 1  # the cases score neither nothing nor everything
    assert 100 * exact == pytest.approx(float(reference["exact_match"]), abs=1e-4)
    assert 100 * f1 == pytest.approx(float(reference["f1"]), abs=1e-4)


# (id, language, text, its normalized tokens)
TOKEN_CASES = [
    ("English articles and punctuation", "en", "The Eiffel Tower, (an icon)!", ["eiffel", "tower", "icon"]),
    ("German articles", "de", "Der Turm und das Haus", ["turm", "und", "haus"]),
    ("German article inside a word kept", "de", "Dieser Derwisch", ["dieser", "derwisch"]),
    ("Spanish articles", "es", "La Torre de los Vientos", ["torre", "de", "vientos"]),
    ("Unicode punctuation", "fr", "« Tour Eiffel » — Paris…", ["tour", "eiffel", "paris"]),
    ("Chinese characters one by one", "zh", "埃菲尔铁塔，在巴黎。", ["埃", "菲", "尔", "铁", "塔", "在", "巴", "黎"]),
    ("Chinese with Latin runs", "zh", "位于Paris的 Eiffel塔", ["位", "于", "paris", "的", "eiffel", "塔"]),
    ("Arabic definite article", "ar", "البرج الكبير", ["برج", "كبير"]),
    ("Vietnamese articles", "vi", "cái tháp của Paris", ["tháp", "paris"]),
    ("a language without article rules", "ru", "Эйфелева башня, Париж", ["эйфелева", "башня", "париж"]),
]


@pytest.mark.parametrize("language,text,tokens", [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES])
def test_normalization_follows_mlqa(language, text, tokens):
    assert answer_tokens(text, language) == tokens


# (id, language, prediction, gold answers, exact match, F1)
SCORE_CASES = [
    ("best of several gold answers", "en", "the Seine", ["river Seine", "Seine"], 1.0, 1.0),
    ("partial overlap", "de", "die alte Brücke", ["alte Brücke von Paris"], 0.0, 2 * (1.0 * 0.5) / 1.5),
    ("characters overlap in Chinese", "zh", "巴黎市", ["巴黎"], 0.0, 2 * (2 / 3 * 1.0) / (2 / 3 + 1.0)),
    ("nothing in common", "en", "London", ["Paris"], 0.0, 0.0),
    ("empty prediction", "en", "", ["Paris"], 0.0, 0.0),
    ("both only articles: exact, yet F1 0 (SQuAD v1.1, MLQA)", "en", "The!", ["an"], 1.0, 0.0),
]


@pytest.mark.parametrize("language,prediction,gold,exact,f1", [c[1:] for c in SCORE_CASES],
                         ids=[c[0] for c in SCORE_CASES])
def test_scores_of_single_predictions(language, prediction, gold, exact, f1):
    assert answer_scores([prediction], [gold], language) == pytest.approx((exact, f1))


def test_prediction_and_gold_counts_must_match():
    with pytest.raises(ValueError, match="2 predictions for 1 examples"):
        answer_scores(["a", "b"], [["a"]], "en")
