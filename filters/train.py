"""Train Sieve's fastText classifiers (the CS336 recipe), report held-out metrics, write a model.

    python -m filters.train quality --positive wiki.txt --wikitext --negative cc.jsonl.gz --out my-quality.ftz
    python -m filters.train toxicity --text-field tweet --chunk-words 0 \\
        --positive labeled.csv --positive-where class=0,1 \\
        --negative labeled.csv --negative-where class=2 --out hate.ftz
    python -m filters.train nsfw --corpus cc.jsonl.gz --wordlist ldnoobw_en.txt --out nsfw.ftz
    python -m filters.train binary --pos-label yes --neg-label no --positive a.txt --negative b.txt --out m.ftz

Inputs (the format follows the file name; .gz and .zst are decompressed):
  text (.txt or anything else)  a document per blank-line-separated paragraph (--unit paragraph,
                                the default: web text and WikiText keep their paragraphs
                                together), per line (--unit line: one tweet or sentence a line)
                                or per file (--unit file); --wikitext reads WikiText-2 instead:
                                a document per article, tokenization (@-@, <unk>) and heading
                                markup (= = Title = =) undone.
  JSONL (.jsonl), JSON (.json: one document per file, or per element of an array), CSV (.csv),
  Parquet (.parquet)            the first non-empty field of --text-field (dotted for nested;
                                "html:F": field F holds raw HTML, read by filters.extract.html_to_text);
                                --positive-where / --negative-where keep rows with COLUMN=V1,V2,
                                an input written PATH::COLUMN=V1,V2 keeps its own rows so.
  WARC is not read here: run the pipeline on the WARCs (it owns the one WARC reader: HTTP status,
  content type, charset, damaged records) and pass its documents/*.parquet (field `text`).
Relative paths (and glob patterns such as 'dir/*.json', quoted) are read under --data-root, so a
recipe runs unchanged on another machine.

Documents are cut into pieces of about --chunk-words words (on both sides, so document length is
no cue), normalized by `prepare_text` (the function the filters apply before predicting: case,
punctuation spacing and quote styles of a corpus cannot be learned), deduplicated, sampled to
--max-per-class, then split into train / held-out *by source document* (--seed): pieces of one
document never sit on both sides, so the held-out numbers are not inflated by near-copies. The
model is trained (single thread: reproducible), quantized, and evaluated on the held-out part:
AUC, accuracy, precision and recall at --threshold. The metrics and the recipe go to
<out>.metrics.json beside the model; name the model path in the config (e.g. filters.quality.model).

quality: --combine-positive / --combine-negative name whole web pages (not cut, not normalized) on
which a logistic regression over [the text model's logit, length and layout statistics] is fitted
(filters.quality.FEATURES); it is written to <out stem>.combiner.json and used with the model.
nsfw / toxicity: --combine-terms WORDLIST fits a logistic regression over [the model's logit,
distinct terms of the list in the piece] (filters.combiner.TERM_FEATURES) on the held-out pieces,
which the model did not train on; it is written the same way, with the terms.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import html
import io
import json
import random
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from filters.models import TEXT_NORMALIZATIONS, prepare_text, sha256_of

# ---------------------------------------------------------------- WikiText and chunking

_WIKITEXT_TOKENS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" <unk>", ""), ("<unk> ", ""), ("<unk>", ""))
_WIKITEXT_ARTICLE = re.compile(r"^ = [^=].* = $")
_WIKITEXT_HEADING = re.compile(r"^ (=(?: =)*) (.*?) \1 ?$")


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's tokenization artefacts (@-@, @,@, @.@, <unk>)."""
    for old, new in _WIKITEXT_TOKENS:
        text = text.replace(old, new)
    return text


def wikitext_articles(content: str) -> Iterator[str]:
    """WikiText-2 articles, one paragraph a line; headings keep their words, lose the '= =' markup."""
    lines: list[str] = []
    for raw in content.split("\n"):
        if _WIKITEXT_ARTICLE.match(raw) and lines:
            yield "\n".join(lines)
            lines = []
        heading = _WIKITEXT_HEADING.match(raw)
        line = detokenize_wikitext(heading.group(2) if heading else raw).strip()
        if line:
            lines.append(line)
    if lines:
        yield "\n".join(lines)


_TWEET_NOISE = re.compile(r"https?://\S+|(?<!\w)@\w+:?|(?<!\w)RT(?!\w)")


def clean_tweet(text: str) -> str:
    """A tweet's words without Twitter furniture (RT, @mentions, links; '#' kept off hashtags) and
    with HTML entities decoded: the furniture is unevenly spread over Davidson's classes (links in
    23% of 'neither' tweets, 10% of toxic ones) and absent from web text, so it must not be learned."""
    text = _TWEET_NOISE.sub(" ", html.unescape(html.unescape(text)))
    return re.sub(r"(?<!\w)#(\w)", r"\1", text).strip()


def chunk_words(text: str, size: int) -> list[str]:
    """Pieces of about `size` words cut at line boundaries (a shorter document is one piece; a
    short tail joins the previous piece)."""
    chunks, current, count = [], [], 0
    for line in text.split("\n"):
        words = line.split()
        if not words:
            continue
        current.append(line)
        count += len(words)
        if count >= size:
            chunks.append("\n".join(current))
            current, count = [], 0
    if current:
        if chunks and count < size // 4:
            chunks[-1] += "\n" + "\n".join(current)
        else:
            chunks.append("\n".join(current))
    return chunks


# ---------------------------------------------------------------- readers

def _open_text(path: Path) -> io.TextIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    if name.endswith(".zst"):
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True),
                                encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _field(row: Any, dotted: str) -> Any:
    """row["a"]["b"] for "a.b" (None when absent)."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _where_ok(row: dict, where: dict[str, set[str]]) -> bool:
    return all(str(_field(row, k)) in values for k, values in where.items())


def _row_text(row: Any, text_fields: list[str], where: dict[str, set[str]]) -> str | None:
    """The first non-blank text field of a row that passes `where` (None otherwise); a field
    named "html:F" holds raw HTML, read as its main text by `filters.extract.html_to_text`."""
    if not _where_ok(row, where):
        return None
    for name in text_fields:
        html_field = name.removeprefix("html:")
        value = _field(row, html_field)
        if html_field != name and isinstance(value, str) and value.strip():
            return _html_text(value) or None  # a page without main text gives no document
        if isinstance(value, str) and value.strip():
            return value
    return None


def _html_text(markup: str) -> str:
    """Main text of a page held as a string, as the pipeline extracts it (so that training text
    carries the extractor's artefacts exactly as the documents it will score do)."""
    from filters.extract import html_to_text

    return html_to_text(markup) or ""


@dataclass
class ReadStats:
    """Records read and skipped per reason (bad input is counted, never fatal for the whole run)."""

    documents: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, reason: str, where: str) -> None:
        if not self.skipped[reason]:
            print(f"[train] skipping {reason}: first at {where}", file=sys.stderr)
        self.skipped[reason] += 1


def read_documents(path: str | Path, *, text_fields: list[str], unit: str = "paragraph",
                   where: dict[str, set[str]] | None = None, wikitext: bool = False,
                   stats: ReadStats | None = None) -> Iterator[str]:
    """Documents of one input file (formats: see the module docstring)."""
    path, where, stats = Path(path), where or {}, stats if stats is not None else ReadStats()
    name = path.name.lower()
    if ".warc" in name or name.endswith((".arc", ".arc.gz")):
        raise ValueError(f"{path}: WARC input is read by the pipeline, not the training CLI: run "
                         "`python -m pipeline.run` on it and train on its documents/*.parquet (field text)")
    if name.endswith(".parquet"):
        docs = _parquet_documents(path, text_fields, where)
    elif name.endswith(".json"):
        docs = _json_document(path, text_fields, where, stats)
    elif ".jsonl" in name:
        docs = _jsonl_documents(path, text_fields, where, stats)
    elif ".csv" in name:
        docs = _csv_documents(path, text_fields, where)
    else:
        docs = _text_documents(path, unit, wikitext)
    for doc in docs:
        stats.documents += 1
        yield doc


def _text_documents(path: Path, unit: str, wikitext: bool) -> Iterator[str]:
    with _open_text(path) as fh:
        content = fh.read()
    if wikitext:
        yield from wikitext_articles(content)
        return
    parts = {"line": content.split("\n"), "file": [content]}.get(unit) or re.split(r"\n\s*\n", content)
    yield from (p.strip() for p in parts if p.strip())


def _json_document(path: Path, text_fields: list[str], where: dict, stats: ReadStats) -> Iterator[str]:
    with _open_text(path) as fh:
        try:
            row = json.load(fh)
        except json.JSONDecodeError as exc:
            stats.skip("invalid JSON", f"{path}: {exc}")
            return
    for item in row if isinstance(row, list) else [row]:  # a JSON array holds one row per element
        if text := _row_text(item, text_fields, where):
            yield text


def _jsonl_documents(path: Path, text_fields: list[str], where: dict, stats: ReadStats) -> Iterator[str]:
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.skip("invalid JSON line", f"{path}:{line_no}: {exc}")
                continue
            if text := _row_text(row, text_fields, where):
                yield text


def _csv_documents(path: Path, text_fields: list[str], where: dict) -> Iterator[str]:
    with _open_text(path) as fh:
        for row in csv.DictReader(fh):
            if text := _row_text(row, text_fields, where):
                yield text


def _parquet_documents(path: Path, text_fields: list[str], where: dict) -> Iterator[str]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    text_column = next((f for f in text_fields if f in names), None)
    if text_column is None:
        raise ValueError(f"{path}: none of the text fields {text_fields} (--text-field) is a column of {names}")
    columns = [text_column] + [k for k in where if k != text_column]
    for batch in parquet.iter_batches(columns=columns, batch_size=4096):
        for row in batch.to_pylist():
            text = row[text_column]
            if isinstance(text, str) and text.strip() and _where_ok(row, where):
                yield text


# ---------------------------------------------------------------- dataset, training, metrics

@dataclass(frozen=True)
class Example:
    """One training piece: its label, normalized text, the document it came from (`group`) and the
    input argument that named that document's file (`source`, e.g. a glob pattern)."""

    label: str
    text: str
    group: str
    source: str = ""


def make_examples(docs: list[tuple[str, str, str]], label: str, chunk: int, max_chars: int,
                  max_pieces: int = 0, seed: int = 0, normalization: str | None = None) -> list[Example]:
    """Pieces of (source, group, document) triples, normalized; empty pieces dropped. With
    `max_pieces`, a seeded sample of at most that many pieces per document, so that a few very
    long pages cannot dominate the training data or the held-out numbers."""
    out = []
    for source, group, doc in docs:
        pieces = chunk_words(doc, chunk) if chunk else [doc]
        if max_pieces and len(pieces) > max_pieces:
            keep = sorted(random.Random(f"{seed}:{group}").sample(range(len(pieces)), max_pieces))
            pieces = [pieces[i] for i in keep]
        for piece in pieces:
            text = prepare_text(piece, max_chars, normalization=normalization)
            if text:
                out.append(Example(label, text, group, source))
    return out


def dedupe(examples: list[Example]) -> list[Example]:
    """First example of each normalized text (a copy would sit on both sides of the split)."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out


def split_by_group(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held-out): whole source documents go to one side, in seeded random order, until each
    stratum holds about `fraction` of its examples out. A stratum is (label, input source) of the
    document's majority label, so every input (WikiText, CC, ...) is represented in the held-out
    part in proportion, and pieces of one document never sit on both sides."""
    by_group: dict[str, list[Example]] = {}
    for ex in examples:
        by_group.setdefault(ex.group, []).append(ex)

    def stratum(members: list[Example]) -> tuple[str, str]:
        label = Counter(ex.label for ex in members).most_common(1)[0][0]
        return label, members[0].source

    totals = Counter(stratum(members) for members in by_group.values() for _ in members)
    held_counts: Counter = Counter()
    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    train, held = [], []
    for group in groups:
        members, key = by_group[group], stratum(by_group[group])
        if held_counts[key] < fraction * totals[key]:
            held.extend(members)
            held_counts[key] += len(members)
        else:
            train.extend(members)
    return train, held


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve: P(a positive outranks a negative), ties counting half."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def binary_metrics(scores: Any, truth: Any, threshold: float) -> dict[str, Any]:
    """AUC, and accuracy / precision / recall of `score >= threshold` (rounded for the card)."""
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=bool)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & truth))
    return {
        "auc": round(roc_auc(scores, truth), 4),
        "threshold": threshold,
        "accuracy": round(float(np.mean(predicted == truth)), 4) if len(truth) else None,
        "precision": round(tp / int(predicted.sum()), 4) if predicted.any() else None,
        "recall": round(tp / int(truth.sum()), 4) if truth.any() else None,
    }


def positive_probability(model: Any, text: str, pos_label: str) -> float:
    """P(pos_label) from all labels' probabilities (k=-1), whatever order fastText returns them in."""
    labels, probs = model.predict(text, k=-1)
    return next((min(float(p), 1.0) for lab, p in zip(labels, probs) if lab == f"__label__{pos_label}"), 0.0)


@dataclass(frozen=True)
class Hyper:
    """fastText hyperparameters of a training run (recorded in the metrics and the card)."""

    epoch: int = 10
    lr: float = 0.5
    dim: int = 64
    word_ngrams: int = 2
    minn: int = 0  # character n-grams of minn..maxn letters (0: whole words only, fastText's supervised default)
    maxn: int = 0
    min_count: int = 2
    bucket: int = 200_000
    quantize: bool = True
    cutoff: int = 20_000
    seed: int = 0


def train_fasttext(train: list[Example], out: Path, hyper: Hyper) -> Any:
    """Train (one thread: same data and seed give the same model), quantize, save to `out`; the
    model is returned loaded from `out`.

    Training runs in a fresh (spawned) process: in a process that had done other work first (the
    bench's quality section), fastText stopped with "Encountered NaN" on data and settings that
    train cleanly alone; in a new process the result depends only on the data and the seed."""
    import multiprocessing

    import fasttext

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_path = Path(tmp) / "train.txt"
        train_path.write_text("".join(f"__label__{ex.label} {ex.text}\n" for ex in train), encoding="utf-8")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(_fit_and_save, (str(train_path), str(out), hyper))
    return fasttext.load_model(str(out))


def _fit_and_save(train_path: str, out: str, hyper: Hyper) -> None:
    import fasttext

    model = fasttext.train_supervised(input=train_path, epoch=hyper.epoch, lr=hyper.lr, dim=hyper.dim,
                                      wordNgrams=hyper.word_ngrams, minn=hyper.minn, maxn=hyper.maxn,
                                      minCount=hyper.min_count,
                                      bucket=hyper.bucket, thread=1, seed=hyper.seed, verbose=0)
    if hyper.quantize:
        model.quantize(input=train_path, qnorm=True, retrain=True, cutoff=hyper.cutoff, thread=1, verbose=0)
    model.save_model(out)


def evaluate(model: Any, held: list[Example], pos_label: str, threshold: float) -> dict[str, Any]:
    scores = [positive_probability(model, ex.text, pos_label) for ex in held]
    return binary_metrics(scores, [ex.label == pos_label for ex in held], threshold)


# ---------------------------------------------------------------- the recipe (CLI)

DEFAULT_LABELS = {"quality": ("high", "low"), "toxicity": ("toxic", "non-toxic"), "nsfw": ("nsfw", "non-nsfw")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m filters.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["quality", "toxicity", "nsfw", "binary"],
                   help="labels high/low, toxic/non-toxic, nsfw/non-nsfw, or --pos-label/--neg-label")
    p.add_argument("--data-root", default=".", help="directory that relative input paths are read under")
    p.add_argument("--positive", nargs="*", default=[], help="files of the positive class")
    p.add_argument("--negative", nargs="*", default=[], help="files of the negative class")
    p.add_argument("--corpus", nargs="*", default=[], help="nsfw: files to label weakly with --wordlist")
    p.add_argument("--wordlist", help="nsfw: one term per line")
    p.add_argument("--min-hits", type=int, default=2, help="nsfw: distinct list terms that make a piece positive")
    p.add_argument("--positive-where", help="keep positive rows with COLUMN=V1,V2 (JSON/JSONL/CSV/Parquet)")
    p.add_argument("--negative-where", help="keep negative rows with COLUMN=V1,V2")
    p.add_argument("--pos-label", help="binary (or to rename the defaults)")
    p.add_argument("--neg-label")
    p.add_argument("--text-field", default="text,t,ground_truth.main_content",
                   help="comma-separated text fields of JSON/JSONL/CSV/Parquet (dotted for nested), first non-empty wins")
    p.add_argument("--unit", choices=["paragraph", "line", "file"], default="paragraph",
                   help="text files: a document per blank-line-separated paragraph, per line, or per file")
    p.add_argument("--wikitext", action="store_true", help="text files are WikiText: a document per article, tokens undone")
    p.add_argument("--tweets", action="store_true", help="documents are tweets: drop RT, @mentions, links, '#'; decode entities")
    p.add_argument("--chunk-words", type=int, default=200, help="cut documents into pieces of about N words (0: whole)")
    p.add_argument("--max-pieces-per-doc", type=int, default=0, help="seeded sample of at most N pieces per document (0: all)")
    p.add_argument("--max-chars", type=int, default=20_000, help="characters of a piece the model sees")
    p.add_argument("--max-per-class", type=int, help="seeded sample of at most N pieces per label")
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of pieces held out (by source document)")
    p.add_argument("--threshold", type=float, default=0.5, help="P(positive) threshold of the reported precision/recall")
    p.add_argument("--seed", type=int, default=0, help="sampling, split and fastText seed")
    p.add_argument("--epoch", type=int, default=Hyper.epoch)
    p.add_argument("--lr", type=float, default=Hyper.lr)
    p.add_argument("--dim", type=int, default=Hyper.dim)
    p.add_argument("--word-ngrams", type=int, default=Hyper.word_ngrams)
    p.add_argument("--minn", type=int, default=Hyper.minn, help="shortest character n-gram (0: none)")
    p.add_argument("--maxn", type=int, default=Hyper.maxn, help="longest character n-gram")
    p.add_argument("--min-count", type=int, default=Hyper.min_count)
    p.add_argument("--bucket", type=int, default=Hyper.bucket)
    p.add_argument("--cutoff", type=int, default=Hyper.cutoff, help="words+ngrams kept by quantization")
    p.add_argument("--no-quantize", action="store_true", help="write a full .bin model")
    p.add_argument("--combine-positive", nargs="*", default=[],
                   help="quality: whole web documents of the positive class for the combiner, a logistic "
                        "regression over [text model logit, length and layout statistics] (filters.quality)")
    p.add_argument("--combine-negative", nargs="*", default=[], help="quality: whole documents of the negative class")
    p.add_argument("--combine-l2", type=float, default=1.0, help="L2 penalty of the combiner (standardized features)")
    p.add_argument("--combine-terms", help="nsfw/toxicity: word list (one term per line) whose distinct terms the "
                                           "combiner counts beside the model's logit (filters.combiner)")
    p.add_argument("--sources", nargs="*", default=[],
                   help="labelled sources of filters.toxicity_data (read under --data-root, each mapped to the labels)")
    p.add_argument("--per-source", type=int, default=0,
                   help="--sources: a seeded sample of at most N pieces per label per source, the same number for "
                        "both labels of a source (0: all), so no source's register or label balance is learned")
    p.add_argument("--leave-out", help="drop this source (a --sources name) from the data: leave-one-source-out runs")
    p.add_argument("--text-normalization", choices=list(TEXT_NORMALIZATIONS), default=None,
                   help="normalization applied before prepare_text, recorded with the model and applied at prediction")
    p.add_argument("--out", required=True, help="model file to write (.ftz when quantized)")
    return p


@dataclass
class Dataset:
    """A recipe's examples after sampling, split by source document."""

    pos_label: str
    neg_label: str
    train: list[Example]
    held: list[Example]
    read: ReadStats
    duplicates: int


def _parse_where(spec: str | None) -> dict[str, set[str]]:
    if not spec:
        return {}
    key, sep, values = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"--*-where {spec!r}: expected COLUMN=V1,V2")
    return {key: set(values.split(","))}


def _documents(role: str, paths: list[str], args: argparse.Namespace, where: str | None,
               stats: ReadStats) -> list[tuple[str, str, str]]:
    """(source, group id, text) of every document of `paths`: the source is the argument naming
    the file, the group id names the role (one file may give positives and negatives through
    different --*-where filters), the file (relative to --data-root, so the split does not depend
    on where the data lives) and the document's position among those read."""
    docs = []
    root = Path(args.data_root)
    for source in paths:
        pattern, input_where = split_input_where(source, where)
        for path in _expand(pattern, root):
            name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            for i, doc in enumerate(read_documents(path, text_fields=args.text_field.split(","), unit=args.unit,
                                                   where=_parse_where(input_where), wikitext=args.wikitext,
                                                   stats=stats)):
                docs.append((source, f"{role}:{name}#{i}", clean_tweet(doc) if args.tweets else doc))
    return docs


def split_input_where(source: str, where: str | None) -> tuple[str, str | None]:
    """(file or pattern, row filter) of an input argument: 'PATH::COLUMN=V1,V2' filters the rows
    of that input only (inputs of one class can then need different columns, e.g. a page type
    in one file and a score in another); a plain PATH uses the class's --*-where."""
    pattern, sep, own = source.partition("::")
    return (pattern, own) if sep else (source, where)


def _expand(name: str, root: Path) -> list[Path]:
    """Files of one input argument: the name under `root` (absolute names as they are), or the
    sorted matches of a glob pattern."""
    if any(c in name for c in "*?["):
        matches = sorted(p for p in root.glob(name) if p.is_file())
        if not matches:
            raise FileNotFoundError(f"input pattern {name!r} matches no file under {root}")
        return matches
    if not (root / name).is_file():
        raise FileNotFoundError(f"input {root / name} (from {name!r}) not found")
    return [root / name]


def wordlist_pattern(wordlist: Path) -> re.Pattern:
    """Whole-word alternation of a list's terms (longest first), normalized like the texts it reads."""
    terms = {prepare_text(t) for t in wordlist.read_text(encoding="utf-8").splitlines() if t.strip()}
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b")


def label_by_wordlist(examples: list[Example], pattern: re.Pattern, min_hits: int,
                      pos_label: str, neg_label: str) -> list[Example]:
    """Weak labels: pieces with >= min_hits distinct list terms are positive, with none negative;
    pieces in between are left out (too ambiguous to label either way)."""
    out = []
    for ex in examples:
        hits = len(set(pattern.findall(ex.text)))
        if hits >= min_hits:
            out.append(Example(pos_label, ex.text, ex.group, ex.source))
        elif hits == 0:
            out.append(Example(neg_label, ex.text, ex.group, ex.source))
    return out


def build_dataset(args: argparse.Namespace) -> Dataset:
    """Read, chunk, normalize, weakly label (nsfw), dedupe, sample and split, as the recipe says."""
    pos_label, neg_label = DEFAULT_LABELS.get(args.task, (None, None))
    pos_label, neg_label = args.pos_label or pos_label, args.neg_label or neg_label
    if not pos_label or not neg_label:
        raise ValueError("binary needs --pos-label and --neg-label")
    stats = ReadStats()
    cut = {"chunk": args.chunk_words, "max_chars": args.max_chars, "max_pieces": args.max_pieces_per_doc, "seed": args.seed,
           "normalization": args.text_normalization}
    examples = make_examples(_documents("positive", args.positive, args, args.positive_where, stats), pos_label, **cut)
    examples += make_examples(_documents("negative", args.negative, args, args.negative_where, stats), neg_label, **cut)
    if args.corpus:
        if not args.wordlist:
            raise ValueError("--corpus needs --wordlist (the weak labels)")
        unlabelled = make_examples(_documents("corpus", args.corpus, args, None, stats), "", **cut)
        examples += label_by_wordlist(unlabelled, wordlist_pattern(Path(args.data_root) / args.wordlist),
                                      args.min_hits, pos_label, neg_label)
    unique = dedupe(examples + labelled_examples(args.sources, args, pos_label, neg_label))
    if args.leave_out:
        unique = [ex for ex in unique if ex.source != args.leave_out]
    if args.per_source:
        unique = balance_sources(unique, set(args.sources), args.per_source, args.seed)
    if args.max_per_class:
        rng = random.Random(args.seed)
        sampled = []
        for label in (pos_label, neg_label):
            members = [ex for ex in unique if ex.label == label]
            sampled += rng.sample(members, min(len(members), args.max_per_class))
        unique = sampled
    counts = Counter(ex.label for ex in unique)
    if not counts[pos_label] or not counts[neg_label]:
        raise ValueError(f"need examples of both labels, got {counts[pos_label]} {pos_label!r} "
                         f"and {counts[neg_label]} {neg_label!r}")
    train, held = split_by_group(unique, args.holdout, args.seed)
    return Dataset(pos_label, neg_label, train, held, stats, len(examples) - len(set(ex.text for ex in examples)))


def labelled_examples(names: list[str], args: argparse.Namespace, pos_label: str, neg_label: str) -> list[Example]:
    """Examples of labelled sources (filters.toxicity_data), each row its own document (or its
    source's group), tagged with its source name; normalized as the model will see them."""
    from filters.toxicity_data import source_rows

    out = []
    for name in names:
        for text, positive, group in source_rows(name, Path(args.data_root)):
            prepared = prepare_text(text, args.max_chars, normalization=args.text_normalization)
            if prepared:
                out.append(Example(pos_label if positive else neg_label, prepared, group, name))
    return out


def balance_sources(examples: list[Example], names: set[str], per_source: int, seed: int) -> list[Example]:
    """Each labelled source (of `names`) sampled to the same number of pieces for both its labels,
    at most `per_source` each (seeded); other examples kept as they are."""
    by_key: dict[tuple[str, str], list[Example]] = {}
    for ex in examples:
        by_key.setdefault((ex.source, ex.label), []).append(ex)
    rng = random.Random(seed)
    out = [ex for ex in examples if ex.source not in names]
    for name in sorted(names):
        groups = [members for (source, _), members in sorted(by_key.items()) if source == name]
        if len(groups) < 2:
            continue
        size = min(per_source, *(len(g) for g in groups))
        for members in groups:
            out += rng.sample(members, size)
    return out


def hyper_of(args: argparse.Namespace) -> Hyper:
    return Hyper(epoch=args.epoch, lr=args.lr, dim=args.dim, word_ngrams=args.word_ngrams, minn=args.minn,
                 maxn=args.maxn, min_count=args.min_count, bucket=args.bucket, quantize=not args.no_quantize,
                 cutoff=args.cutoff, seed=args.seed)


def run_recipe(argv: list[str]) -> dict[str, Any]:
    """Build the dataset, train, evaluate; write the model and <out>.metrics.json; return the metrics."""
    args = build_parser().parse_args(argv)
    data = build_dataset(args)
    out = Path(args.out)
    model = train_fasttext(data.train, out, hyper_of(args))
    count = lambda xs, label: sum(ex.label == label for ex in xs)  # noqa: E731
    metrics = {
        "recipe": ["python", "-m", "filters.train", *argv],
        "labels": {"positive": data.pos_label, "negative": data.neg_label},
        "documents_read": data.read.documents,
        "skipped": dict(data.read.skipped),
        "duplicate_pieces_dropped": data.duplicates,
        "train_examples": {data.pos_label: count(data.train, data.pos_label), data.neg_label: count(data.train, data.neg_label)},
        "heldout_examples": {data.pos_label: count(data.held, data.pos_label), data.neg_label: count(data.held, data.neg_label)},
        "heldout_documents": len({ex.group for ex in data.held}),
        "split": f"by source document, seed {args.seed}, {args.holdout:.0%} of each label held out",
        "heldout": evaluate(model, data.held, data.pos_label, args.threshold),
        **({"heldout_by_source": {name: evaluate(model, [ex for ex in data.held if ex.source == name], data.pos_label,
                                                 args.threshold) for name in args.sources}} if args.sources else {}),
        "text_normalization": args.text_normalization,
        "hyperparameters": {**hyper_of(args).__dict__, "chunk_words": args.chunk_words,
                            "max_pieces_per_doc": args.max_pieces_per_doc, "max_chars": args.max_chars},
        "model_bytes": out.stat().st_size,
        "model_sha256": sha256_of(out),
    }
    if args.combine_positive or args.combine_negative:
        metrics["combiner"] = train_combiner(args, data, out)
    if args.combine_terms:
        metrics["combiner"] = train_term_combiner(args, data, model, out)
    out.with_name(out.stem + ".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---------------------------------------------------------------- quality: text model + document statistics

def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, std, coefficients, intercept) of an L2-penalized logistic regression on standardized
    `x` (Newton's method: deterministic, no solver settings; the intercept is not penalized)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    penalty = np.eye(z.shape[1]) * l2
    penalty[-1, -1] = 0.0
    beta = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z + penalty, z.T @ (p - y) + penalty @ beta)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, std, beta[:-1], float(beta[-1])


def train_combiner(args: argparse.Namespace, data: Dataset, model_path: Path) -> dict[str, Any]:
    """Fit the quality combiner on whole documents (--combine-positive / --combine-negative) scored
    by the model just trained, write `<stem>.combiner.json` beside it, return its figures.

    These documents are read as they are (not cut into pieces, not normalized): the combiner
    learns how length and layout weigh beside the text model on real pages, which the text model's
    length-balanced pieces cannot teach it.
    """
    from filters.classifier import Classifier
    from filters.quality import DEFAULT_MAX_CHARS, FEATURES, Combiner, combiner_path, document_features

    stats = ReadStats()
    docs = [(True, text) for _, _, text in _documents("combine-positive", args.combine_positive, args, None, stats)]
    docs += [(False, text) for _, _, text in _documents("combine-negative", args.combine_negative, args, None, stats)]
    if not any(label for label, _ in docs) or all(label for label, _ in docs):
        raise ValueError("the combiner needs documents of both classes (--combine-positive and --combine-negative)")
    text_model = Classifier(str(model_path))  # not the per-process cache: this file was just written
    x = np.array([document_features(text, text_model.probability(text, data.pos_label, DEFAULT_MAX_CHARS))
                  for _, text in docs])
    y = np.array([label for label, _ in docs])
    mean, std, coef, intercept = fit_logistic(x, y, args.combine_l2)
    combiner = Combiner(FEATURES, *(tuple(round(float(v), 6) for v in a) for a in (mean, std, coef)), round(intercept, 6))
    path = combiner_path(model_path)
    path.write_text(json.dumps(combiner.to_json(), indent=2) + "\n")
    fitted = np.array([combiner.logit(list(row)) for row in x])
    return {
        "file": path.name,
        "documents": {data.pos_label: int(y.sum()), data.neg_label: int((~y).sum())},
        "skipped": dict(stats.skipped),
        "l2": args.combine_l2,
        "standardized_coef": dict(zip(FEATURES, combiner.coef)),
        "train_auc": {"combined": round(roc_auc(fitted, y), 4), "text_model": round(roc_auc(x[:, 0], y), 4),
                      "log_chars": round(roc_auc(x[:, 1], y), 4)},
    }


# ---------------------------------------------------------------- nsfw / hate: text model + word-list terms

def recipe_terms(args: argparse.Namespace) -> tuple[str, ...]:
    """The prepared terms of the recipe's --combine-terms list."""
    from filters.combiner import prepare_terms

    path = Path(args.data_root) / args.combine_terms
    try:
        return prepare_terms(path.read_text(encoding="utf-8").splitlines())
    except OSError as exc:
        raise FileNotFoundError(f"--combine-terms {path}: {exc.strerror}") from exc


def term_rows(model: Any, examples: list[Example], pos_label: str, terms: tuple[str, ...]) -> np.ndarray:
    """TERM_FEATURES of prepared pieces, the model's probability from the library (as `evaluate`)."""
    from filters.classifier import line_tokens
    from filters.combiner import term_features, term_table

    table = term_table(terms)
    return np.array([term_features(line_tokens(ex.text), positive_probability(model, ex.text, pos_label), table)
                     for ex in examples], dtype=float).reshape(-1, 3)


def fit_term_combiner(model: Any, held: list[Example], pos_label: str, terms: tuple[str, ...], l2: float) -> Any:
    """The term combiner fitted on pieces `model` did not train on."""
    from filters.combiner import TERM_FEATURES, Combiner

    x, y = term_rows(model, held, pos_label, terms), np.array([ex.label == pos_label for ex in held])
    mean, std, coef, intercept = fit_logistic(x, y, l2)
    return Combiner(TERM_FEATURES, *(tuple(round(float(v), 6) for v in a) for a in (mean, std, coef)),
                    round(intercept, 6), terms)


def combined_scores(model: Any, combiner: Any, examples: list[Example], pos_label: str) -> np.ndarray:
    """The combiner's logits of prepared pieces (the ranking its probability gives)."""
    return np.array([combiner.logit(list(row)) for row in term_rows(model, examples, pos_label, combiner.terms)])


def train_term_combiner(args: argparse.Namespace, data: Dataset, model: Any, model_path: Path) -> dict[str, Any]:
    """Fit the term combiner on the held-out pieces, write `<stem>.combiner.json`, return its figures.
    Its held-out AUC is in-sample for its four parameters (the text model's is not)."""
    from filters.combiner import TERM_FEATURES, combiner_path

    terms = recipe_terms(args)
    combiner = fit_term_combiner(model, data.held, data.pos_label, terms, args.combine_l2)
    path = combiner_path(model_path)
    path.write_text(json.dumps(combiner.to_json(), indent=2) + "\n")
    truth = [ex.label == data.pos_label for ex in data.held]
    x = term_rows(model, data.held, data.pos_label, terms)
    return {
        "file": path.name,
        "terms": {"file": args.combine_terms, "count": len(terms)},
        "fitted_on": "the held-out pieces",
        "l2": args.combine_l2,
        "standardized_coef": dict(zip(TERM_FEATURES, combiner.coef)),
        "heldout_auc": {"combined": round(roc_auc(combined_scores(model, combiner, data.held, data.pos_label), truth), 4),
                        "text_model": round(roc_auc(x[:, 0], truth), 4), "terms": round(roc_auc(x[:, 1], truth), 4)},
    }


def leave_one_source_out(recipe: list[str], data_root: Path) -> list[dict[str, Any]]:
    """Cross-source figures of a recipe's text model: for each source of either class (its inputs
    in one directory, e.g. WikiText's valid and test files), a model trained without that source
    (same split, seed and settings) scores all of that source's pieces against the held-out pieces
    of the other class. A recipe that learned its sources rather than the labels scores much lower
    here than on its own held-out part."""
    args = build_parser().parse_args(recipe + ["--data-root", str(data_root)])
    data = build_dataset(args)
    hyper = hyper_of(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, inputs in ((data.pos_label, args.positive), (data.neg_label, args.negative)):
            sources: dict[str, set[str]] = {}
            for name in inputs:
                sources.setdefault(Path(split_input_where(name, None)[0]).parent.as_posix(), set()).add(name)
            for directory, names in sources.items():
                left_out = lambda ex: ex.label == label and ex.source in names  # noqa: E731
                scored = [ex for ex in data.train + data.held if left_out(ex)]
                scored += [ex for ex in data.held if ex.label != label]
                model = train_fasttext([ex for ex in data.train if not left_out(ex)], Path(tmp) / "loso.ftz", hyper)
                rows.append({"left_out": directory, "label": label, "pieces": sum(ex.label == label for ex in scored),
                             "auc": evaluate(model, scored, data.pos_label, args.threshold)["auc"]})
    return rows


def recipe_heldout(metrics_path: Path, data_root: Path) -> tuple[str, list[Example]]:
    """(positive label, held-out examples) of a trained model, rebuilt from the recipe in its
    metrics file with inputs read under `data_root` (the benchmark and tests score these)."""
    recipe = json.loads(Path(metrics_path).read_text())["recipe"][3:]
    args = build_parser().parse_args(recipe + ["--data-root", str(data_root)])
    data = build_dataset(args)
    return data.pos_label, data.held


def wordlist_scores(texts: list[str], wordlist: Path) -> np.ndarray:
    """The word-list baseline: distinct terms of the list in each (prepared) text."""
    pattern = wordlist_pattern(wordlist)
    return np.array([len(set(pattern.findall(text))) for text in texts], dtype=float)


def _scored(model: Any, combiner: Any, examples: list[Example], pos_label: str, wordlist: Path) -> dict[str, Any]:
    """AUC of the model (with its term combiner, if any) beside the word list's on `examples`."""
    truth = [ex.label == pos_label for ex in examples]
    scores = (combined_scores(model, combiner, examples, pos_label) if combiner is not None
              else [positive_probability(model, ex.text, pos_label) for ex in examples])
    return {"auc": round(roc_auc(scores, truth), 4),
            "wordlist_auc": round(roc_auc(wordlist_scores([ex.text for ex in examples], wordlist), truth), 4),
            "positive": int(sum(truth)), "negative": len(truth) - int(sum(truth))}


def transfer_report(metrics_path: Path, data_root: Path, wordlist: Path, evaluate_only: tuple[str, ...] = ()
                    ) -> dict[str, dict[str, Any]]:
    """Per labelled source of a multi-source recipe: the in-domain AUC (the trained model beside
    the metrics file, on that source's held-out part) and the leave-one-source-out AUC (the recipe
    trained on every other source, tested on all of that source's rows whose text it did not
    see), each beside the word-list baseline on the same rows. A recipe with a term combiner
    (--combine-terms) is scored with it: the left-out runs train the model on the other sources'
    training part and fit the combiner on their held-out part, as the recipe does; without one
    they train on both parts. Sources of `evaluate_only` (labels meaning something else) are
    scored by the trained model on all their rows. The leave-one-out models skip quantization
    (5-10x faster to train; quantizing moved the in-domain AUC by < 0.01 here)."""
    import fasttext

    from filters.combiner import TERM_FEATURES, Combiner, combiner_path

    metrics_path = Path(metrics_path)
    recipe = json.loads(metrics_path.read_text())["recipe"][3:]
    args = build_parser().parse_args(recipe + ["--data-root", str(data_root)])
    data = build_dataset(args)
    model_path = metrics_path.with_name(metrics_path.name.removesuffix(".metrics.json") + ".ftz")
    model = fasttext.load_model(str(model_path))
    combiner = Combiner.from_file(combiner_path(model_path), TERM_FEATURES) if args.combine_terms else None
    report: dict[str, dict[str, Any]] = {"in_domain": {}, "leave_one_out": {}, "evaluated_only": {}}
    for name in args.sources:
        held = [ex for ex in data.held if ex.source == name]
        report["in_domain"][name] = _scored(model, combiner, held, data.pos_label, wordlist)
    seen = {ex.text for ex in data.train}
    for name in evaluate_only:
        rows = [ex for ex in labelled_examples([name], args, data.pos_label, data.neg_label) if ex.text not in seen]
        report["evaluated_only"][name] = _scored(model, combiner, rows, data.pos_label, wordlist)
    hyper = Hyper(**{**hyper_of(args).__dict__, "quantize": False})
    terms = recipe_terms(args) if args.combine_terms else ()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sources:
            left = build_dataset(build_parser().parse_args(recipe + ["--data-root", str(data_root), "--leave-out", name]))
            train = left.train if terms else left.train + left.held
            loso = train_fasttext(train, Path(tmp) / f"without-{name}.bin", hyper)
            loso_combiner = fit_term_combiner(loso, left.held, data.pos_label, terms, args.combine_l2) if terms else None
            seen = {ex.text for ex in left.train + left.held}
            rows = [ex for ex in labelled_examples([name], args, data.pos_label, data.neg_label) if ex.text not in seen]
            report["leave_one_out"][name] = _scored(loso, loso_combiner, rows, data.pos_label, wordlist)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        metrics = run_recipe(argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"python -m filters.train: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # fastText diverged ("Encountered NaN")
        print(f"python -m filters.train: training failed: {exc} (try a lower --lr)", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
