"""Model registry, quality / NSFW / hate classifiers and the training CLI."""
from __future__ import annotations

import hashlib
import http.server
import random
import re
import threading
from functools import partial

import fasttext
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import Document
from filters.classifier import Classifier, document_tokens
from filters.models import REGISTRY, ModelError, download, prepare_text, resolve_model
from filters.quality import QualityFilter, classify_quality
from filters.toxicity import ToxicityFilter, classify_nsfw, classify_toxic_speech
from filters.train import main as train_main
from filters.train import make_examples, read_documents, recipe_heldout, roc_auc, split_by_group
from tests.shipped_models import MODELS, retrain_shipped

_QUOTE_TABLE = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'"})


def reference_prepare(text: str) -> str:
    """prepare_text as the shipped models were trained with it, written plainly."""
    padded = re.sub(r"""([.,!?;:()\[\]{}"'…—–])""", r" \1 ", text.lower().translate(_QUOTE_TABLE))
    return re.sub(r"\s+", " ", padded).strip()

EDGE_CASES = ["", "   \n\t ", "x" * 10_000_000, "broken \udcff\udcfe bytes", "mixed English, Ελληνικά, 中文, العربية"]


def test_registry_resolves_package_and_shipped_models():
    assert resolve_model("lid176").name == "lid.176.ftz"
    for name in ("sieve-quality", "sieve-hate", "sieve-nsfw"):
        path = resolve_model(name)
        assert path.is_file() and path.stat().st_size < 2_000_000
        assert (path.with_suffix(".md")).is_file()  # every shipped model has its card
    assert REGISTRY["dclm-oh-eli5"].labels == {"hq": "high", "cc": "low"}


def test_local_path_and_missing_file(tmp_path):
    model = resolve_model("sieve-hate")
    assert resolve_model(str(model)) == model
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "nope.bin"))


@pytest.fixture()
def local_server(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"fake model bytes")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model.bin"
    server.shutdown()


def test_download_verifies_sha256_and_caches(local_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SIEVE_CACHE_DIR", str(tmp_path / "cache"))
    good = hashlib.sha256(b"fake model bytes").hexdigest()
    path = download(local_server, good)
    assert path.read_bytes() == b"fake model bytes"
    assert download(local_server, good) == path  # cached: no second fetch needed
    with pytest.raises(ModelError, match="sha256 mismatch"):
        download(local_server + "?v=2", "0" * 64)
    assert not list((tmp_path / "cache").glob(".part-*"))  # no partial file left behind


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(max_codepoint=0x2FFFF), st.sampled_from("“”„«»‘’‚.,!?;:()[]{}\"'…—– \n\t\x1c\x85\xa0\u2028\u3000İẞ")),
               max_size=80))
def test_prepare_text_matches_reference(text):
    assert prepare_text(text) == reference_prepare(text)


def test_prepare_text_matches_reference_on_real_text(shared_data):
    import gzip
    import json

    docs = [json.loads(line)["text"] for line in gzip.open(
        shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")]
    docs += [t for t, _ in _davidson(shared_data)[:2000]]
    assert all(prepare_text(t, 5000) == reference_prepare(t[:5000]) for t in docs)
    assert prepare_text("“Don’t,” she said — «fine».") == '" don \' t , " she said — " fine " .'


def _library_probabilities(model, text: str, max_chars: int | None, normalization: str | None = None) -> dict[str, float]:
    """What the fasttext library says about `prepare_text(text, max_chars)` (after the model's
    normalization; no line: nothing)."""
    line = prepare_text(text, max_chars, normalization=normalization)
    if not line:
        return {}
    labels, probs = model.predict(line.encode("utf-8", "replace").decode("utf-8"), k=-1)
    return {label.removeprefix("__label__"): min(float(p), 1.0) for label, p in zip(labels, probs)}


def _assert_compiled_equals_library(name_or_path: str, texts: list[str]) -> None:
    compiled = Classifier(name_or_path)
    assert compiled.compiled is not None  # the compiled path, not the library
    library = fasttext.load_model(str(resolve_model(name_or_path)))
    for text in texts:
        for max_chars in (5000, None):
            expected = _library_probabilities(library, text, max_chars, compiled.normalization)
            for label in compiled.labels:
                got = compiled.probability(text, compiled.spec.sieve_label(label), max_chars)
                assert got == pytest.approx(expected.get(label, 0.0), abs=1e-6), (name_or_path, text[:80])


TRICKY = ["", " \n\t", "\x00", "a\x00b c", "__label__high the cat __label__", "“Don’t,” she said — «fine».",
          "a\udcffb c\udcfe", "İstanbul ẞ ÇAĞ", "中文，字。", "\x1c\x1f\x85\xa0\u2028 z", "</s> the </s>"]


def test_compiled_classifiers_equal_the_fasttext_library(shared_data):
    import gzip
    import json

    docs = [json.loads(line)["text"] for line in gzip.open(
        shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")][:300]
    tweets = [t for t, _ in _davidson(shared_data)[:500]]
    for name in ("sieve-quality", "sieve-hate", "sieve-nsfw"):
        _assert_compiled_equals_library(name, docs + tweets + TRICKY)


def test_compiled_classifier_of_an_unquantized_model(tmp_path):
    rng = random.Random(2)
    good = [" ".join(rng.choice(["river", "bridge", "valley", "museum", "é", "“quoted”"]) for _ in range(30))
            for _ in range(60)]
    bad = [" ".join(rng.choice(["cheap", "buy", "now", "click", "free", "!"]) for _ in range(30)) for _ in range(60)]
    (tmp_path / "good.txt").write_text("\n\n".join(good))
    (tmp_path / "bad.txt").write_text("\n\n".join(bad))
    out = tmp_path / "m.bin"
    assert train_main(["binary", "--pos-label", "good", "--neg-label", "spam", "--positive", str(tmp_path / "good.txt"),
                       "--negative", str(tmp_path / "bad.txt"), "--no-quantize", "--word-ngrams", "3",
                       "--out", str(out)]) == 0
    _assert_compiled_equals_library(str(out), good[:20] + bad[:20] + TRICKY + ["river cheap unknownword bridge"])


def test_models_outside_the_compiled_kinds_use_the_library(monkeypatch):
    # A model the compiled path does not compute (one-vs-all or negative-sampling loss, quantized
    # output matrix) reads as None; the fasttext library then predicts the same probabilities.
    import filters.classifier as classifier_module

    text = "you are a worthless stupid idiot, shut up"
    compiled = Classifier("sieve-hate")
    monkeypatch.setattr(classifier_module, "read_compiled_model", lambda path: None)
    library = Classifier("sieve-hate")
    assert library.compiled is None and compiled.compiled is not None
    assert library.probability(text, "toxic", 5000) == pytest.approx(compiled.probability(text, "toxic", 5000), abs=1e-6)
    assert library.best_label(text) == pytest.approx(compiled.best_label(text), abs=1e-6)
    assert library.labels == compiled.labels


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(max_codepoint=0x2FFFF), st.sampled_from(
    "“”„«»‘’‚.,!?;:()[]{}\"'…—– \n\t\x00\x1c\x85\xa0\u2028\u3000İẞ\udcff")), max_size=80),
       st.sampled_from([None, 5, 40]))
def test_compiled_tokens_are_prepare_text_as_fasttext_splits_it(text, max_chars):
    tokens = document_tokens((text, max_chars))
    got = [bytes(tokens.buf[a:b]) for a, b in zip(tokens.starts, tokens.ends)]
    line = prepare_text(text, max_chars).encode("utf-8", "replace")
    assert got == [w for w in line.replace(b"\x00", b" ").split(b" ") if w]
    assert tokens.nonempty == bool(line)


def _davidson(shared_data) -> list[tuple[str, str]]:
    import csv

    with open(shared_data / "toxicity/davidson/labeled_data.csv", newline="") as fh:
        return [(row["tweet"], row["class"]) for row in csv.DictReader(fh)]


def test_hate_model_on_its_heldout_tweets(shared_data):
    # The card's held-out rows of every source, rebuilt from the recipe stored beside the model.
    import json

    pos_label, held = recipe_heldout(MODELS / "sieve-hate.metrics.json", shared_data)
    scores = np.array([p if label == "toxic" else 1 - p for label, p in (classify_toxic_speech(ex.text) for ex in held)])
    truth = np.array([ex.label == pos_label for ex in held])
    card = json.loads((MODELS / "sieve-hate.metrics.json").read_text())["heldout"]["auc"]
    assert len(held) > 2000 and roc_auc(scores, truth) == pytest.approx(card, abs=0.01)


def test_heldout_split_keeps_documents_whole():
    lines = lambda i: "\n".join(" ".join(f"w{i}_{k}_{j}" for j in range(20)) for k in range(50))  # noqa: E731
    docs = [("a.txt", f"doc{i}", lines(i)) for i in range(40)]  # 1,000 words on 50 lines each
    examples = make_examples(docs, "high", chunk=100, max_chars=20_000)
    train, held = split_by_group(examples, 0.1, seed=3)
    assert len(train) + len(held) == len(examples) == 400
    assert {ex.group for ex in train}.isdisjoint({ex.group for ex in held})
    assert len({ex.group for ex in held}) == 4  # 10% of the documents, each with all its pieces
    assert split_by_group(examples, 0.1, seed=3) == (train, held)  # seeded: the card's split can be rebuilt


def test_quality_model_separates_wikitext_from_cc(shared_data):
    import gzip
    import json

    wiki = [p for p in read_documents(shared_data / "quality/wikitext-2/test.txt", text_fields=["text"], wikitext=True)
            if len(p.split()) > 80][:100]
    cc = [json.loads(line)["text"] for line in gzip.open(
        shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")][:100]
    scores = [classify_quality(t) for t in wiki + cc]
    p_high = np.array([p if label == "high" else 1 - p for label, p in scores])
    truth = np.array([True] * len(wiki) + [False] * len(cc))
    assert roc_auc(p_high, truth) > 0.9


def test_training_reads_zstandard_jsonl(shared_data):
    # The shipped quality recipe reads HPLT's CC.jsonl.zst (its warc2text text in field "t"; one
    # line holds invalid UTF-8, read with surrogateescape).
    docs = list(read_documents(shared_data / "html/hplt-sample100/CC.jsonl.zst", text_fields=["text", "t"], unit="document"))
    assert len(docs) == 98 and all(d.strip() for d in docs)  # 100 pages, two without text


def test_labels_and_probabilities_are_python_floats():
    for fn, labels in ((classify_quality, {"high", "low"}), (classify_nsfw, {"nsfw", "non-nsfw"}),
                       (classify_toxic_speech, {"toxic", "non-toxic"})):
        label, p = fn("The committee published its annual report on regional water quality.")
        assert label in labels and type(p) is float and 0.5 <= p <= 1.0


def test_obvious_cases():
    assert classify_toxic_speech("you are a worthless stupid bitch, shut up")[0] == "toxic"
    assert classify_toxic_speech("The museum opens at nine and closes at five on weekdays.")[0] == "non-toxic"
    assert classify_nsfw("hot xxx porn videos, nude sex cams, hardcore anal")[0] == "nsfw"
    assert classify_nsfw("Preheat the oven and grease a round baking tin.")[0] == "non-nsfw"


@pytest.mark.parametrize("text", EDGE_CASES)
def test_filters_on_edge_cases(text):
    quality, toxicity = QualityFilter(), ToxicityFilter()
    doc = Document(doc_id="e", text=text)
    quality.annotate(doc)
    toxicity.annotate(doc)
    for key in ("quality_score", "nsfw_score", "hate_score"):
        assert type(doc.signals[key]) is float and 0.0 <= doc.signals[key] <= 1.0
    if not text.strip():
        assert doc.signals["quality_score"] == 0.0


def test_filter_decisions_follow_thresholds():
    quality = QualityFilter({"min_score": 0.6})
    assert quality.decide({"quality_score": 0.59}) == "quality:low_score"
    assert quality.decide({"quality_score": 0.6}) is None
    toxicity = ToxicityFilter({"max_nsfw": 0.5, "max_hate": 0.7})
    assert toxicity.decide({"nsfw_score": 0.51, "hate_score": 0.0}) == "toxicity:nsfw"
    assert toxicity.decide({"nsfw_score": 0.1, "hate_score": 0.71}) == "toxicity:hate"
    assert toxicity.decide({"nsfw_score": 0.5, "hate_score": 0.7}) is None


def test_class_and_function_agree():
    text = "Tomatoes grow well in large pots on a sunny balcony if you water them every morning."
    doc = Document(doc_id="x", text=text)
    QualityFilter().annotate(doc)
    label, p = classify_quality(text)
    assert doc.signals["quality_score"] == pytest.approx(p if label == "high" else 1 - p)


def test_train_cli_tiny_dataset(tmp_path, capsys):
    rng = random.Random(1)
    good = [" ".join(rng.choice(["river", "bridge", "valley", "history", "museum", "harbour"]) for _ in range(30))
            for _ in range(60)]
    bad = [" ".join(rng.choice(["cheap", "buy", "now", "click", "free", "deal"]) for _ in range(30)) for _ in range(60)]
    (tmp_path / "good.txt").write_text("\n\n".join(good))
    (tmp_path / "bad.jsonl").write_text("\n".join(f'{{"text": "{b}"}}' for b in bad))
    out = tmp_path / "m.ftz"
    assert train_main(["binary", "--pos-label", "good", "--neg-label", "spam", "--positive", str(tmp_path / "good.txt"),
                       "--negative", str(tmp_path / "bad.jsonl"), "--holdout", "0.25", "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".metrics.json").is_file()
    assert '"auc": 1.0' in capsys.readouterr().out
    doc = Document(doc_id="t", text="click now for a free deal, buy cheap")
    QualityFilter({"model": str(out)}).annotate(doc)  # an arbitrary model path with unmapped labels
    assert doc.signals["quality_score"] == 0.0  # its labels are good/spam, not high/low


def test_roc_auc_ties():
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.9, 0.1], [True, False]) == 1.0


def test_hate_recipe_reproduces_the_shipped_model(shared_data, tmp_path):
    """The recipe stored in the card's metrics retrains the shipped model (single thread, seeded)."""
    shipped, again = retrain_shipped("sieve-hate", shared_data, tmp_path)
    assert again["heldout_examples"] == shipped["heldout_examples"]
    assert again["heldout"]["auc"] == pytest.approx(shipped["heldout"]["auc"], abs=0.002)
