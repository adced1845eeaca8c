"""Language identification: accuracy on Tatoeba and UDHR, edge cases, and the LanguageFilter."""
from __future__ import annotations

import csv
import re
import tarfile
from pathlib import Path

import pytest

from filters import Document, filter_class
from filters.language import LanguageFilter, load_model, identify_language
from tests.filtering import verdict

# Tatoeba's CLD2 codes that lid.176 spells differently, and languages lid.176 does not know.
CLD2_TO_LID = {"iw": "he", "jw": "jv", "zh-Hant": "zh"}
NOT_IN_LID176 = {"chr", "ny", "st", "rw"}
CHINESE = {"zh", "wuu", "yue"}
# UDHR files of widely written languages, where a web LID must be right.
UDHR_MAJOR = ("eng fra deu_1996 spa por_PT por_BR ita nld rus ukr pol ces slk hun ron_2006 bul "
              "ell_monotonic tur arb heb pes_1 hin ben urd tam tel tha vie ind cmn_hans cmn_hant "
              "jpn kor swe dan nob fin est lav lit kat hye").split()
BCP47_TO_LID = {"nb": "no"}


def _lid_labels() -> set[str]:
    return set(load_model("lid176").labels)


def test_identify_language_returns_code_and_python_float() -> None:
    language, score = identify_language("The committee will publish its annual report next week.")
    assert language == "en"
    assert type(score) is float and 0.5 < score <= 1.0


def test_multiline_text_is_one_prediction() -> None:
    text = "Der Ausschuss trifft sich morgen.\nEr wird über den Haushalt beraten.\n\nDanach gibt es Kaffee."
    assert identify_language(text)[0] == "de"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_or_blank_text_is_undetermined(text: str) -> None:
    assert identify_language(text) == ("und", 0.0)


def test_invalid_utf8_surrogates_do_not_crash() -> None:
    raw = "Ceci est une phrase française, avec un octet invalide: \xff.".encode("utf-8")
    raw = raw.replace(b"\xc3\xbf", b"\xff")  # a lone 0xff byte, invalid UTF-8
    text = raw.decode("utf-8", errors="surrogateescape")
    assert "\udcff" in text
    language, score = identify_language(text)
    assert language == "fr" and 0.0 < score <= 1.0


def test_mixed_scripts_pick_the_dominant_language() -> None:
    english = "This page describes the history of the city and its famous harbour. " * 5
    text = english + "東京は日本の首都です。"
    assert identify_language(text)[0] == "en"
    text = "Hello. " + "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。" * 5
    assert identify_language(text)[0] == "ja"


def test_ten_megabyte_text_uses_max_chars() -> None:
    text = "Les données ouvertes favorisent la transparence et l'innovation. " * 160_000
    assert len(text) > 10_000_000
    assert identify_language(text, max_chars=2000)[0] == "fr"
    doc = Document(doc_id="big", text=text)
    LanguageFilter({"allowed": ["fr"]}).annotate(doc)
    assert doc.signals["language"] == "fr"


def test_tatoeba_accuracy(shared_data: Path) -> None:
    """Measured: 0.929 on the 438 sentences of languages lid.176 knows, 0.881 on all 462."""
    path = shared_data / "langid" / "tatoeba" / "tatoeba_long.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) > 400
    hits_supported: list[bool] = []
    hits_all: list[bool] = []
    for row in rows:
        gold = CLD2_TO_LID.get(row["CLD2-code"], row["CLD2-code"])
        predicted = identify_language(row["text"])[0]
        hit = predicted == gold or (gold == "zh" and predicted in CHINESE)
        hits_all.append(hit)
        if not (gold.startswith("xx-") or gold in NOT_IN_LID176):
            hits_supported.append(hit)
    assert sum(hits_supported) / len(hits_supported) >= 0.90
    assert sum(hits_all) / len(hits_all) >= 0.85


@pytest.fixture(scope="module")
def udhr_texts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """file stem -> (gold BCP-47 primary language, text extracted with resiliparse)."""
    from resiliparse.extract.html2text import extract_plain_text

    out = tmp_path_factory.mktemp("udhr")
    with tarfile.open(shared_data / "langid" / "udhr" / "udhr_declarations_532.tar.xz") as tar:
        tar.extractall(out, filter="data")
    texts = {}
    for path in sorted((out / "declaration").glob("*.html")):
        html = path.read_text(encoding="utf-8")
        lang = re.search(r'<html[^>]* lang="([^"]+)"', html)
        if lang:
            primary = lang.group(1).split("-")[0]
            texts[path.stem] = (BCP47_TO_LID.get(primary, primary),
                                extract_plain_text(html, main_content=False))
    return texts


def test_udhr_major_languages(udhr_texts: dict[str, tuple[str, str]]) -> None:
    """HTML -> text -> LID end to end; measured 42/42 on these widely written languages."""
    filt = LanguageFilter({"allowed": []})
    correct = 0
    for stem in UDHR_MAJOR:
        gold, text = udhr_texts[stem]
        doc = Document(doc_id=stem, text=text)
        filt.annotate(doc)
        correct += doc.signals["language"] == gold
    assert correct / len(UDHR_MAJOR) >= 0.95


def _library_best(model, line: str) -> tuple[str, float]:
    labels, probs = model.predict(line.encode("utf-8", "replace").decode("utf-8"))
    return labels[0].removeprefix("__label__"), float(probs[0])


def test_compiled_lid_equals_the_fasttext_library(shared_data: Path, udhr_texts: dict[str, tuple[str, str]]) -> None:
    """lid.176 (character n-grams, hierarchical softmax, quantized) predicted in compiled code
    gives fastText's label and probability: measured equal to the last bit."""
    import fasttext

    from filters.models import resolve_model

    library = fasttext.load_model(str(resolve_model("lid176")))
    with (shared_data / "langid" / "tatoeba" / "tatoeba_long.tsv").open(encoding="utf-8", newline="") as handle:
        lines = [row["text"] for row in csv.DictReader(handle, delimiter="\t")]
    lines += [text[:2000] for _, text in udhr_texts.values()]
    lines += ["a", "</s>", "x </s> y", "__label__en hello there", "a\udcffb", "\x00\x00 hi", "x" * 5000,
              "ÇAĞ İstanbul\u00a0\u2028hé", "\t\x0b\x0c\r mixed"]
    compiled = load_model("lid176")
    assert compiled.compiled is not None
    for line in lines:
        line = line.replace("\n", " ")
        got = compiled.best_label(line)
        expected = _library_best(library, line)
        assert got[0] == expected[0] and got[1] == pytest.approx(expected[1], abs=1e-6), line[:80]


def test_udhr_all_languages_known_to_lid176(udhr_texts: dict[str, tuple[str, str]]) -> None:
    """Measured 0.75 over ~175 declarations: many are regional languages, rare scripts (Javanese
    script, Baybayin, Han-script Vietnamese) or close relatives (bs/hr/sr, gl/pt) that lid.176
    confuses. The number guards against regressions, not a quality claim."""
    labels = _lid_labels()
    known = {stem: item for stem, item in udhr_texts.items() if item[0] in labels}
    assert len(known) > 150
    correct = sum(identify_language(text, max_chars=2000)[0] == gold
                  for gold, text in known.values())
    assert correct / len(known) >= 0.70


def test_language_filter_decisions() -> None:
    filt = LanguageFilter()
    assert [f.name for f in filt.signal_schema()] == ["language", "language_score"]
    assert filt.decide({"language": "en", "language_score": 0.9}) is None
    assert filt.decide({"language": "de", "language_score": 0.9}) == "language:not_allowed"
    assert filt.decide({"language": "en", "language_score": 0.3}) == "language:low_score"
    assert filt.decide({"language": "und", "language_score": 0.0}) == "language:low_score"
    everything = LanguageFilter({"allowed": [], "min_score": 0.5})
    assert everything.decide({"language": "de", "language_score": 0.9}) is None


def test_language_filter_end_to_end_and_registry() -> None:
    filt = filter_class("language")({"allowed": ["en", "fr"]})
    keep, reason = verdict(filt, Document(doc_id="1", text="Bonjour à tous, la réunion commence à midi."))
    assert keep and reason is None
    keep, reason = verdict(filt, Document(doc_id="2", text="Buenos días, la reunión empieza a mediodía."))
    assert not keep and reason == "language:not_allowed"


def test_language_params_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LanguageFilter({"min_scor": 0.5})
    with pytest.raises(ValueError):
        LanguageFilter({"min_score": 1.5})
    missing = tmp_path / "nope.ftz"
    filt = LanguageFilter({"model": str(missing)})
    with pytest.raises(FileNotFoundError, match="nope.ftz"):
        filt.annotate(Document(doc_id="x", text="some text"))
