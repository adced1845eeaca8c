"""The default quality model (text model + combiner): loading, scoring, retraining, and its
measured standing against length alone on the human-judged dev pages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from filters import Document
from filters.models import ModelError, resolve_model
from filters.quality import FEATURES, Combiner, QualityFilter, classify_quality, document_features, load_combiner, quality_score
from filters.train import fit_logistic, read_documents, roc_auc, split_input_where
from tests.shipped_models import MODELS, retrain_shipped

PROSE = ("The river rises in the western hills and flows east for two hundred kilometres before it reaches the sea. "
         "Its valley was settled early, and the towns along its banks grew up around mills and bridges.\n") * 6
LISTING = "\n".join(f"Item {i} | $ {i * 3}.99 | SKU {1000 + i}" for i in range(40))


def test_shipped_model_loads_by_name_with_its_combiner():
    path = resolve_model("sieve-quality")
    assert path.name == "sieve-quality.ftz" and (MODELS / "sieve-quality.md").is_file()
    combiner = load_combiner("sieve-quality")
    assert combiner is not None and combiner.features == FEATURES
    label, p = classify_quality(PROSE)
    assert label == "high" and type(p) is float and 0.5 <= p <= 1.0
    assert quality_score(PROSE) > quality_score(LISTING)
    assert quality_score("") == 0.0 and quality_score(" \n\t") == 0.0


def test_filter_and_function_agree():
    doc = Document(doc_id="q", text=PROSE)
    QualityFilter().annotate(doc)
    assert doc.signals["quality_score"] == quality_score(PROSE)


def test_combiner_is_the_documented_logistic_regression():
    combiner = load_combiner("sieve-quality")
    x = document_features(PROSE, 0.8)
    z = combiner.intercept + sum(c * (v - m) / s for c, v, m, s in zip(combiner.coef, x, combiner.mean, combiner.std))
    assert combiner.probability(x) == pytest.approx(1 / (1 + np.exp(-z)))
    assert x[1] == pytest.approx(np.log1p(len(PROSE))) and x[2] == 1.0 and x[3] == 1.0
    assert document_features(PROSE, 0.0)[0] == pytest.approx(-np.log(1e5 - 1))  # the floor keeps logits finite


def test_combiner_with_other_features_is_refused(tmp_path):
    bad = {"features": ["log_chars"], "mean": [0.0], "std": [1.0], "coef": [1.0], "intercept": 0.0}
    (tmp_path / "m.combiner.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="features"):
        Combiner.from_file(tmp_path / "m.combiner.json", FEATURES)


def test_fit_logistic_recovers_a_known_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * [1.0, 3.0] + [0.0, 5.0]
    y = rng.random(4000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - 0.5 * (x[:, 1] - 5.0))))
    mean, std, coef, intercept = fit_logistic(x, y, l2=0.0)
    assert coef / std == pytest.approx([1.5, -0.5], abs=0.15)
    assert fit_logistic(x, y, l2=1.0)[2] == pytest.approx(fit_logistic(x, y, l2=1.0)[2])  # deterministic


def test_per_input_row_filters_and_json_arrays_and_html_fields(tmp_path):
    assert split_input_where("a/*.json::score=3,4", "x=1") == ("a/*.json", "score=3,4")
    assert split_input_where("a.csv", "x=1") == ("a.csv", "x=1")
    rows = [{"text": "kept one", "score": 3}, {"text": "dropped", "score": 1},
            {"h": "<html><body><p>Main text of a page.</p></body></html>", "text": "warc2text"}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    got = list(read_documents(tmp_path / "rows.json", text_fields=["html:h", "text"], where={"score": {"3"}}))
    assert got == ["kept one"]
    got = list(read_documents(tmp_path / "rows.json", text_fields=["html:h", "text"]))
    assert got == ["kept one", "dropped", "Main text of a page."]  # raw HTML read by Sieve's extractor


def test_quality_recipe_reproduces_the_shipped_model(shared_data, tmp_path):
    """The recipe stored in the metrics retrains the text model and the combiner byte for byte."""
    shipped, again = retrain_shipped("sieve-quality", shared_data, tmp_path)
    assert again["model_sha256"] == shipped["model_sha256"]
    assert again["heldout"] == shipped["heldout"] and again["combiner"] == shipped["combiner"]
    assert (tmp_path / "sieve-quality.combiner.json").read_text() == (MODELS / "sieve-quality.combiner.json").read_text()


def _dev(shared_data: Path, name: str) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in open(shared_data / "quality/dclm-human-dev" / name)]
    return [r["text"] for r in rows], np.array([int(r["label"]) == 1 for r in rows])


@pytest.mark.parametrize("name", ["majority_dev.jsonl", "agreement_dev.jsonl"])
def test_shipped_model_beats_length_alone_on_human_judgments(shared_data, name):
    # A regression guard of a measured fact (card: 0.814 vs 0.703 majority, 0.912 vs 0.811 agreement).
    texts, truth = _dev(shared_data, name)
    model = roc_auc([quality_score(t) for t in texts], truth)
    length = roc_auc(np.log1p([len(t) for t in texts]), truth)
    assert model > length + 0.04


def test_training_cli_leaves_warc_to_the_pipeline_reader(tmp_path):
    """One WARC reader (the pipeline's, which checks HTTP status and content type): the training
    CLI refuses WARC input and says what to train on instead."""
    warc = tmp_path / "crawl.warc.gz"
    warc.write_bytes(b"")
    with pytest.raises(ValueError, match=r"crawl\.warc\.gz.*documents/\*\.parquet"):
        list(read_documents(warc, text_fields=["text"]))
