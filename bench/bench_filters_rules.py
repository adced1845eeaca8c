"""Language ID accuracy (Tatoeba, UDHR) and the per-document cost of the non-model filters
(language, PII, Gopher quality and repetition, C4, FineWeb) on real extracted web text, next to the extraction itself."""
from __future__ import annotations

import csv
import re
import tarfile
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Callable

from bench.common import realweb_pages
from filters import Document
from filters import text as text_module
from filters.c4 import C4Filter
from filters.extract import html_to_text
from filters.fineweb import FineWebFilter
from filters.gopher import GopherFilter, GopherRepetitionFilter
from filters.language import LanguageFilter, load_model, identify_language
from filters.pii import PIIFilter

_TATOEBA_CODE_FIXES = {"iw": "he", "jw": "jv", "zh-Hant": "zh"}
_UDHR_CODE_FIXES = {"nb": "no"}
_UDHR_MAJOR = set(
    "eng fra deu_1996 spa por_PT por_BR ita nld rus ukr pol ces slk hun ron_2006 bul ell_monotonic "
    "tur arb heb pes_1 hin ben urd tam tel tha vie ind cmn_hans cmn_hant jpn kor swe dan nob fin "
    "est lav lit kat hye".split())


def _resiliparse_lid(text: str) -> str:
    from resiliparse.parse.lang import detect_fast

    return detect_fast(text)[0]


def _lid176(text: str) -> str:
    return identify_language(text, max_chars=2000)[0]


def _tatoeba(shared: Path, labels: set[str]) -> list[tuple[str, str]]:
    """(gold lid.176 code, sentence) for the Tatoeba sentences of languages lid.176 knows."""
    path = shared / "langid" / "tatoeba" / "tatoeba_long.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    pairs = [(_TATOEBA_CODE_FIXES.get(r["CLD2-code"], r["CLD2-code"]), r["text"]) for r in rows]
    return [(gold, text) for gold, text in pairs if gold in labels]


def _udhr(shared: Path, work: Path, labels: set[str]) -> list[tuple[str, str, str]]:
    """(file stem, gold code, text) of the UDHR declarations in languages lid.176 knows."""
    from resiliparse.extract.html2text import extract_plain_text

    out = Path(tempfile.mkdtemp(dir=work))
    with tarfile.open(shared / "langid" / "udhr" / "udhr_declarations_532.tar.xz") as tar:
        tar.extractall(out, filter="data")
    docs = []
    for path in sorted((out / "declaration").glob("*.html")):
        html = path.read_text(encoding="utf-8")
        lang = re.search(r'<html[^>]* lang="([^"]+)"', html)
        gold = lang and _UDHR_CODE_FIXES.get(lang.group(1).split("-")[0], lang.group(1).split("-")[0])
        if gold in labels:
            docs.append((path.stem, gold, extract_plain_text(html, main_content=False)))
    return docs


def _accuracy(detect: Callable[[str], str], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """(accuracy, microseconds per text); Chinese variants count as Chinese."""
    chinese = {"zh", "wuu", "yue"}
    started = time.perf_counter()
    predictions = [detect(text) for _, text in pairs]
    micros = 1e6 * (time.perf_counter() - started) / len(pairs)
    hits = sum(p == g or (g == "zh" and p in chinese) for (g, _), p in zip(pairs, predictions))
    return hits / len(pairs), micros


def _lid_section(shared: Path, work: Path) -> list[str]:
    labels = set(load_model("lid176").labels)
    tatoeba = _tatoeba(shared, labels)
    udhr = _udhr(shared, work, labels)
    sets = {
        f"Tatoeba, {len(tatoeba)} sentences": tatoeba,
        f"UDHR, {sum(s in _UDHR_MAJOR for s, _, _ in udhr)} widely written languages":
            [(g, t) for s, g, t in udhr if s in _UDHR_MAJOR],
        f"UDHR, all {len(udhr)} declarations in lid.176 languages": [(g, t) for _, g, t in udhr],
    }
    lines = ["### Language ID accuracy (lid.176.ftz vs resiliparse `detect_fast`)", "",
             "| set | lid.176 accuracy | µs/text | resiliparse accuracy | µs/text |",
             "|---|---:|---:|---:|---:|"]
    for name, pairs in sets.items():
        ours, ours_us = _accuracy(_lid176, pairs)
        theirs, theirs_us = _accuracy(_resiliparse_lid, pairs)
        lines.append(f"| {name} | {ours:.3f} | {ours_us:.0f} | {theirs:.3f} | {theirs_us:.0f} |")
    lines += ["", "Sets keep only languages lid.176 knows. The UDHR texts are extracted from HTML with "
              "resiliparse; lid.176 reads the first 2,000 characters (the `LanguageFilter` default).", ""]
    return lines


def _median_micros(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e6 * median(times)


def _cost_section(shared: Path, quick: bool) -> list[str]:
    pages = realweb_pages(shared, limit=120 if quick else 760)
    texts: list[str] = []
    started = time.perf_counter()
    for _, html, _ in pages:
        texts.append(html_to_text(html) or "")
    extract_us = 1e6 * (time.perf_counter() - started) / len(pages)
    filters = [LanguageFilter(), PIIFilter(), GopherFilter(), GopherRepetitionFilter(), C4Filter(),
               FineWebFilter()]
    for filt in filters:  # load models and build the character tables outside the timing
        filt.annotate(Document(doc_id="warm", text=texts[0] or "warm up"))
    repeats = 1 if quick else 3

    def run_alone(filt) -> None:
        for i, text in enumerate(texts):
            text_module.text_stats.cache_clear()
            filt.annotate(Document(doc_id=str(i), text=text))

    def run_chain() -> None:
        for i, text in enumerate(texts):
            doc = Document(doc_id=str(i), text=text)
            for filt in filters:
                filt.annotate(doc)

    n = len(texts)
    rows = [(filt.name, _median_micros(lambda f=filt: run_alone(f), repeats) / n) for filt in filters]
    chain_us = _median_micros(run_chain, repeats) / n
    mean_chars = sum(map(len, texts)) / n
    lines = ["### Per-document cost of the non-model filters on extracted web text", "",
             f"{n} pages of `bench/realweb-*.warc.gz`, extracted with `filters.extract.html_to_text` "
             f"({extract_us / 1000:.2f} ms/page here, mean {mean_chars:,.0f} characters of text). "
             "Each filter alone recomputes the shared line/word statistics; in the chain the two Gopher "
             "filters, C4 and FineWeb share them.", "",
             "| filter | µs/doc | % of extraction |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:.0f} | {us / extract_us:.1%} |" for name, us in rows]
    lines += [f"| **language + pii + gopher + gopher_repetition + c4 + fineweb, chained** | **{chain_us:.0f}** | "
              f"**{chain_us / extract_us:.1%}** |", ""]
    verdict = "within" if chain_us / extract_us <= 0.30 else "over"
    lines.append(f"These six filters cost {chain_us / extract_us:.0%} of extraction, {verdict} the "
                 "30% budget that all filters (with the classifiers and MinHash) share; the whole "
                 "annotate stage is measured in the annotate section.")
    return lines


def run(shared: Path, work: Path, quick: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    lines = ["## Rule filters and language ID", ""]
    lines += _lid_section(shared, work)
    lines += _cost_section(shared, quick)
    return "\n".join(lines) + "\n"
