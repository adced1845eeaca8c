"""sieve-hate and sieve-nsfw: several labelled sources, the deobfuscate-v1 normalization they
declare, the recipes that retrain them."""
from __future__ import annotations

import gzip
import json
import re

import pytest

from filters.classifier import load_classifier
from filters.models import spec_for
from filters.toxicity import classify_nsfw, classify_toxic_speech, hate_score, nsfw_score
from filters.toxicity_data import SOURCES, clean_markup, source_rows
from filters.train import main as train_main
from tests.shipped_models import MODELS, retrain_shipped

ASTERISK_PAGES = [
    "## Installation\n\nRun `pip install sieve`. **Note:** the *first* run compiles loops.\n\n"
    "* item one\n* item two\n\nSee the footnote.*\n\n* Prices exclude VAT.",
    "Total: 3*4 = 12 items at $5 each, **$60** in all. Offer valid until 31.12.*\n"
    "*Terms and conditions apply. Version 2.1.3 of the app; covid19 rules; 4k video.",
    "def area(w, h):\n    return w*h\n\nkwargs = dict(**defaults)\nprint(f(*args))  # a**2 + b**2",
    "Contact |||EMAIL_ADDRESS||| or |||PHONE_NUMBER||| for the *new* timetable; ***important*** changes.",
    "Rating: ***** (5 stars). *** Breaking news *** The council approved the budget on Tuesday.",
]


def test_models_declare_the_normalization_and_quality_does_not():
    assert spec_for("sieve-hate").text_normalization == "deobfuscate-v1"
    assert spec_for("sieve-nsfw").text_normalization == "deobfuscate-v1"
    assert load_classifier("sieve-nsfw").normalization == "deobfuscate-v1"
    assert load_classifier("sieve-quality").normalization is None
    for model in ("sieve-hate", "sieve-nsfw"):
        assert json.loads((MODELS / f"{model}.metrics.json").read_text())["text_normalization"] == "deobfuscate-v1"


def test_quality_input_is_unchanged_by_the_normalization():
    text = "What the f*ck, this **bold** claim costs $5."
    from filters.classifier import document_tokens

    quality = load_classifier("sieve-quality")  # its text model reads the tokens shared by all three
    assert quality.probability(text, "high", 5000) == pytest.approx(
        float(quality.compiled.probabilities(document_tokens((text, 5000)))[quality.labels.index("high")]))



@pytest.mark.parametrize("text, shared", [
    ("Download the MP3 at WWW.Example.com in 2020.", True),  # looked at, only lowercased
    ("Über Café", False), ("What the F*CK", False), ("plain text", True)])
def test_normalized_tokens_are_the_shared_ones_when_only_the_case_changes(text, shared):
    """The NSFW and hate models reuse the quality model's tokens when deobfuscation only
    lowercases; otherwise they read the normalized text's own tokens."""
    from filters.classifier import document_tokens, normalized_tokens
    from filters.deobfuscate import deobfuscate

    tokens = normalized_tokens((text, 5000, "deobfuscate-v1"))
    assert (tokens is document_tokens((text, 5000))) == shared
    expected = document_tokens((deobfuscate(text), None))
    assert [bytes(tokens.buf[a:b]) for a, b in zip(tokens.starts, tokens.ends)] == [
        bytes(expected.buf[a:b]) for a, b in zip(expected.starts, expected.ends)]

def test_issue_example_is_nsfw():
    assert classify_nsfw("SUCK MY C*CK ... F*CKING *SSH*LE")[0] == "nsfw"
    masked, plain = "f*cking sh1t, s u c k my c0ck", "fucking shit, suck my cock"
    assert nsfw_score(masked) == pytest.approx(nsfw_score(plain), abs=1e-6)
    assert hate_score(masked) == pytest.approx(hate_score(plain), abs=1e-6)


@pytest.mark.parametrize("text", ASTERISK_PAGES)
def test_asterisks_markdown_code_prices_and_masks_are_not_nsfw(text):
    assert classify_nsfw(text)[0] == "non-nsfw"
    assert classify_toxic_speech(text)[0] == "non-toxic"


def test_api_labels_unchanged():
    assert classify_toxic_speech("The museum opens at nine and closes at five on weekdays.")[0] == "non-toxic"
    assert classify_nsfw("Preheat the oven and grease a round baking tin.")[0] == "non-nsfw"
    label, p = classify_toxic_speech("you are a worthless stupid bitch, shut up")
    assert label in ("toxic", "non-toxic") and type(p) is float


def test_nsfw_score_is_the_combiner_over_the_model_and_the_list_terms():
    """sieve-nsfw ships a term combiner (its card); sieve-hate does not (measured: it moved the
    left-out sources both ways, and profanity alone is not hate)."""
    from filters.combiner import TERM_FEATURES, term_features
    from filters.toxicity import load_term_combiner

    assert load_term_combiner("sieve-hate") is None
    combiner, table = load_term_combiner("sieve-nsfw")
    assert combiner.features == TERM_FEATURES and len(combiner.terms) > 300 and "ball gag" in combiner.terms
    classifier = load_classifier("sieve-nsfw")
    for text in ("What the f*ck, you suck", "The museum opens at nine.", ASTERISK_PAGES[0]):
        x = term_features(classifier.tokens(text, 5000), classifier.probability(text, "nsfw", 5000), table)
        assert nsfw_score(text) == pytest.approx(combiner.probability(x))
    assert nsfw_score("") == 0.0 and nsfw_score(" \n ") == 0.0


def test_terms_are_counted_once_on_the_tokens_the_model_reads():
    from filters.classifier import line_tokens
    from filters.combiner import distinct_terms, prepare_terms, term_table

    table = term_table(prepare_terms(["Ball Gag", "fuck", "two girls one cup", "gag"]))
    count = lambda text: distinct_terms(line_tokens(text), table)  # noqa: E731
    assert count("fuck fuck fuck") == 1
    assert count("a ball gag and two girls one cup") == 3  # the phrase, "gag" inside it, and the other phrase
    assert count("two girls one") == 0 and count("the ball was gone") == 0 and count("") == 0
    # training counts on prepared pieces, prediction on the model's tokens of the raw text: the same tokens
    from filters.models import prepare_text

    classifier = load_classifier("sieve-nsfw")
    for text in ("SUCK MY C*CK ... F*CKING *SSH*LE", "Über Café: “quoted”, spaced f u c k", ASTERISK_PAGES[3]):
        assert list(classifier.tokens(text, None).hashes) == list(
            line_tokens(prepare_text(text, normalization="deobfuscate-v1")).hashes)


def test_markup_that_marks_a_source_is_removed():
    assert clean_markup("RT @user: [USER] look at this <user> http://t.co/x #winning &amp;") == "look at this winning &"


def test_real_masked_posts_score_as_their_plain_words(shared_data):
    """Posts of the labelled sources that mask profanity: the models score them as the same post
    with the words written out."""
    plain = {r"f\*+ck": "fuck", r"f\*+cking": "fucking", r"sh\*+t": "shit", r"b\*+tch": "bitch", r"c\*+nt": "cunt"}
    pattern = re.compile(r"\b(" + "|".join(plain) + r")\b")
    found = 0
    for name in ("edos", "convabuse", "hatemojibuild", "openai_moderation", "wiki_idterm", "fox_news"):
        for text, _, _ in source_rows(name, shared_data):
            low = text.lower()
            if not pattern.search(low):
                continue
            found += 1
            written = pattern.sub(lambda m: next(v for k, v in plain.items() if re.fullmatch(k, m.group())), low)
            assert nsfw_score(low) == pytest.approx(nsfw_score(written), abs=1e-6), text
    assert found >= 5


def test_real_pages_with_asterisks_are_not_nsfw(shared_data):
    """HPLT's CC and WIDE pages that hold asterisks (markdown, footnotes, ratings, code): none is
    called NSFW because of them (the deobfuscated text scores as the raw one, or lower)."""
    from filters.models import prepare_text
    from tests.test_deobfuscate import hplt_texts

    checked = 0
    for text in hplt_texts(shared_data):
        if text.count("*") >= 2:
            checked += 1
            raw = load_classifier("sieve-nsfw").library.predict(prepare_text(text, 5000), k=-1)
            raw_p = dict(zip(raw[0], raw[1])).get("__label__nsfw", 0.0)
            assert classify_nsfw(text)[0] == "non-nsfw" or raw_p >= 0.5, text[:300]
    assert checked >= 3


def test_source_mappings(shared_data):
    counts = {name: [0, 0] for name in ("davidson", "ethos", "openai_sexual")}
    for name in counts:
        for _, positive, _ in source_rows(name, shared_data):
            counts[name][positive] += 1
    assert counts["davidson"] == [4163, 1430]  # class 1 (offensive language) left out
    assert counts["ethos"] == [354, 433]  # 0 < isHate < 0.5 left out
    with gzip.open(shared_data / "toxicity/extra/openai_moderation/samples-1680.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    labelled = [r for r in rows if r.get("S") in (0, 1) and r.get("S3") != 1]
    assert sum(counts["openai_sexual"]) == len(labelled)  # S3 = 1 never used
    assert not SOURCES["olid"].train


def test_a_model_path_declares_its_normalization_in_its_metrics(tmp_path):
    rows = ["you are a f*cking idiot", "what a lovely sunny day in the park"] * 30
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"{t} {i}", "y": str(i % 2)}) for i, t in enumerate(rows)))
    out = tmp_path / "m.ftz"
    assert train_main(["toxicity", "--positive", str(data), "--positive-where", "y=0", "--negative", str(data),
                       "--negative-where", "y=1", "--chunk-words", "0", "--no-quantize", "--min-count", "1",
                       "--text-normalization", "deobfuscate-v1", "--out", str(out)]) == 0
    assert load_classifier(str(out)).normalization == "deobfuscate-v1"


def test_nsfw_recipe_reproduces_the_shipped_model(shared_data, tmp_path):
    """As tests/test_classifiers.py does for sieve-hate, with the per-source held-out figures."""
    shipped, again = retrain_shipped("sieve-nsfw", shared_data, tmp_path)
    assert again["heldout_examples"] == shipped["heldout_examples"]
    assert again["heldout"]["auc"] == pytest.approx(shipped["heldout"]["auc"], abs=0.002)
    for name, figures in shipped.get("heldout_by_source", {}).items():
        assert again["heldout_by_source"][name]["auc"] == pytest.approx(figures["auc"], abs=0.005)
    assert again["combiner"]["heldout_auc"] == pytest.approx(shipped["combiner"]["heldout_auc"], abs=0.002)
    retrained = json.loads((tmp_path / "sieve-nsfw.combiner.json").read_text())
    assert retrained["terms"] == json.loads((MODELS / "sieve-nsfw.combiner.json").read_text())["terms"]
