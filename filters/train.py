"""Train Sieve's fastText classifiers (the CS336 recipe), report held-out metrics, write a model.

    python -m filters.train quality --positive wiki.txt --negative cc.jsonl.gz --out my-quality.ftz
    python -m filters.train toxicity --positive labeled.csv --positive-where class=0,1 \\
        --negative labeled.csv --negative-where class=2 --text-field tweet --out hate.ftz
    python -m filters.train nsfw --corpus cc.jsonl.gz --wordlist ldnoobw_en.txt --out nsfw.ftz
    python -m filters.train binary --pos-label yes --neg-label no --positive a.txt --negative b.txt --out m.ftz

Inputs: text files (a document per blank-line-separated paragraph, or per line with --unit line),
JSONL (.gz/.zst) and Parquet with a text field, CSV with a text column, WARC files (HTML responses,
extracted with filters.extract). Documents are cut into chunks of about --chunk-words words on
both sides so the model cannot learn document length, normalized by `prepare_text` (the same
function the filters apply before predicting), split into train / held-out with --seed, trained,
quantized, and evaluated on the held-out part: AUC, accuracy, precision and recall at 0.5.
The model path can then be named in the config (e.g. filters.quality.model).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

_PUNCT = re.compile(r"([.,!?;:()\[\]{}\"'“”‘’«»…—–])")
_SPACE = re.compile(r"\s+")
_WIKITEXT = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" <unk>", ""), ("<unk> ", ""))


@lru_cache(maxsize=8)
def prepare_text(text: str, max_chars: int | None = None) -> str:
    """One lowercase line with punctuation split off words: what the models see, in training and
    at prediction time alike (so spacing conventions of a corpus cannot be learned as quality).
    Cached for the last few texts: the quality, NSFW and hate models all read the same document."""
    if max_chars is not None:
        text = text[:max_chars]
    return _SPACE.sub(" ", _PUNCT.sub(r" \1 ", text.lower())).strip()


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's tokenization artefacts (@-@, <unk>) before normalization."""
    for old, new in _WIKITEXT:
        text = text.replace(old, new)
    return text


def chunk_words(text: str, size: int) -> list[str]:
    """Pieces of about `size` words, cut at line boundaries (a shorter document is one piece)."""
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
    if current:  # a short tail joins the previous piece; a short document stays whole
        if chunks and count < size // 4:
            chunks[-1] += "\n" + "\n".join(current)
        else:
            chunks.append("\n".join(current))
    return chunks


# ---------------------------------------------------------------- readers

def _open_text(path: Path) -> io.TextIOBase:
    name = path.name
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    if name.endswith(".zst"):
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")),
                                encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _field(row: dict, dotted: str):
    """row["a"]["b"] for "a.b" (None when absent)."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _where_ok(row: dict, where: dict[str, set[str]]) -> bool:
    return all(str(_field(row, k)) in values for k, values in where.items())


def _text_of(row: dict, text_fields: list[str]) -> str | None:
    return next((_field(row, f) for f in text_fields if _field(row, f)), None)


def read_documents(path: str | Path, *, text_fields: list[str], unit: str = "paragraph",
                   where: dict[str, set[str]] | None = None, wikitext: bool = False) -> Iterator[str]:
    """Documents of one input file (see the module docstring for formats)."""
    path, where = Path(path), where or {}
    name = path.name.lower()
    if ".warc" in name or name.endswith(".arc.gz"):
        yield from _warc_documents(path)
        return
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        field = next((f for f in text_fields if f in table.column_names), None)
        if field is None:
            raise ValueError(f"{path}: none of the text fields {text_fields} is a column")
        rows = table.to_pylist()
        yield from (r[field] for r in rows if r.get(field) and _where_ok(r, where))
        return
    with _open_text(path) as fh:
        if name.endswith(".json"):  # one document per file (e.g. WCXB ground truth)
            row = json.load(fh)
            text = _text_of(row, text_fields)
            if text and _where_ok(row, where):
                yield text
        elif ".jsonl" in name:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: not JSON: {exc}") from None
                text = _text_of(row, text_fields)
                if text and _where_ok(row, where):
                    yield text
        elif name.endswith(".csv") or ".csv." in name:
            for row in csv.DictReader(fh):
                text = _text_of(row, text_fields)
                if text and _where_ok(row, where):
                    yield text
        else:
            content = fh.read()
            if wikitext:
                content = detokenize_wikitext(content)
            parts = content.split("\n") if unit == "line" else re.split(r"\n\s*\n", content)
            yield from (p.strip() for p in parts if p.strip())


def _warc_documents(path: Path) -> Iterator[str]:
    from fastwarc.warc import ArchiveIterator

    from filters.extract import html_to_text

    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh, parse_http=True, auto_decode="all"):
            if str(rec.record_type) == "response" and "html" in (rec.http_content_type or ""):
                text = html_to_text(rec.reader.read(), encoding=rec.http_charset)
                if text:
                    yield text


# ---------------------------------------------------------------- training and metrics

def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def split_holdout(items: list, fraction: float, seed: int) -> tuple[list, list]:
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * fraction)
    return shuffled[cut:], shuffled[:cut]


def train_binary(positives: list[str], negatives: list[str], pos_label: str, neg_label: str, out: str | Path, *,
                 seed: int = 0, holdout: float = 0.1, epoch: int = 10, lr: float = 0.5, dim: int = 64,
                 word_ngrams: int = 2, min_count: int = 2, quantize: bool = True,
                 max_chars: int = 20_000) -> dict:
    """Train, quantize, evaluate on the held-out split; returns the metrics (also beside the model)."""
    import fasttext

    labelled = [(pos_label, prepare_text(t, max_chars)) for t in positives] + \
               [(neg_label, prepare_text(t, max_chars)) for t in negatives]
    labelled = [(label, text) for label, text in labelled if text]
    train, held = split_holdout(labelled, holdout, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_path = Path(tmp) / "train.txt"
        train_path.write_text("".join(f"__label__{label} {text}\n" for label, text in train), encoding="utf-8")
        model = fasttext.train_supervised(input=str(train_path), epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams,
                                          minCount=min_count, bucket=200_000, thread=1, seed=seed, verbose=0)
        if quantize:
            model.quantize(input=str(train_path), qnorm=True, retrain=True, cutoff=20_000, thread=1, verbose=0)
        model.save_model(str(out))
    scores = np.array([_positive_probability(model, text, pos_label) for _, text in held])
    truth = np.array([label == pos_label for label, _ in held])
    predicted = scores >= 0.5
    tp = int(np.sum(predicted & truth))
    metrics = {
        "labels": {"positive": pos_label, "negative": neg_label},
        "train_examples": {pos_label: sum(lab == pos_label for lab, _ in train), neg_label: sum(lab == neg_label for lab, _ in train)},
        "heldout_examples": {pos_label: int(truth.sum()), neg_label: int((~truth).sum())},
        "auc": round(roc_auc(scores, truth), 4),
        "accuracy": round(float(np.mean(predicted == truth)), 4) if len(held) else None,
        "precision_at_0.5": round(tp / max(1, int(predicted.sum())), 4),
        "recall_at_0.5": round(tp / max(1, int(truth.sum())), 4),
        "hyperparameters": {"epoch": epoch, "lr": lr, "dim": dim, "wordNgrams": word_ngrams, "minCount": min_count,
                            "quantized": quantize, "quantize_cutoff": 20_000, "seed": seed, "holdout": holdout, "max_chars": max_chars},
        "model_bytes": out.stat().st_size,
    }
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _positive_probability(model, text: str, pos_label: str) -> float:
    labels, probs = model.predict(text, k=-1)
    return next((float(p) for lab, p in zip(labels, probs) if lab == f"__label__{pos_label}"), 0.0)


# ---------------------------------------------------------------- CLI

def _parse_where(spec: str | None) -> dict[str, set[str]]:
    if not spec:
        return {}
    key, _, values = spec.partition("=")
    return {key: set(values.split(","))}


def _gather(paths: list[str], args: argparse.Namespace, where: str | None) -> list[str]:
    docs = []
    for path in paths:
        for doc in read_documents(path, text_fields=args.text_field.split(","), unit=args.unit,
                                  where=_parse_where(where), wikitext=args.wikitext or "wikitext" in path.lower()):
            docs.extend(chunk_words(doc, args.chunk_words) if args.chunk_words else [doc])
    return docs


def label_by_wordlist(docs: list[str], wordlist: str, min_hits: int) -> tuple[list[str], list[str]]:
    """Weak labels: documents with >= min_hits distinct list terms vs documents with none."""
    terms = [t.strip().lower() for t in Path(wordlist).read_text().splitlines() if t.strip()]
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b")
    positive, negative = [], []
    for doc in docs:
        hits = set(pattern.findall(doc.lower()))
        if len(hits) >= min_hits:
            positive.append(doc)
        elif not hits:
            negative.append(doc)
    return positive, negative


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m filters.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["quality", "toxicity", "nsfw", "binary"])
    parser.add_argument("--positive", nargs="*", default=[], help="files of the positive class")
    parser.add_argument("--negative", nargs="*", default=[], help="files of the negative class")
    parser.add_argument("--corpus", nargs="*", default=[], help="nsfw: files to label with --wordlist")
    parser.add_argument("--wordlist", help="nsfw: one term per line")
    parser.add_argument("--min-hits", type=int, default=2, help="nsfw: distinct terms for a positive")
    parser.add_argument("--positive-where", help="keep rows with COLUMN=V1,V2 (CSV/JSONL/Parquet)")
    parser.add_argument("--negative-where")
    parser.add_argument("--pos-label", default=None)
    parser.add_argument("--neg-label", default=None)
    parser.add_argument("--text-field", default="text,t,ground_truth.main_content",
                        help="text field(s) of JSON/JSONL/CSV/Parquet (dotted for nested), first found wins")
    parser.add_argument("--unit", choices=["paragraph", "line"], default="paragraph", help="text files: a document per ...")
    parser.add_argument("--wikitext", action="store_true", help="undo WikiText tokenization (auto for paths with 'wikitext')")
    parser.add_argument("--chunk-words", type=int, default=200, help="cut documents into pieces of ~N words (0: no)")
    parser.add_argument("--max-per-class", type=int, default=None, help="cap examples per class (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--epoch", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--word-ngrams", type=int, default=2)
    parser.add_argument("--no-quantize", action="store_true")
    parser.add_argument("--out", required=True, help="model file to write (.ftz when quantized)")
    args = parser.parse_args(argv)
    default_labels = {"quality": ("high", "low"), "toxicity": ("toxic", "non-toxic"), "nsfw": ("nsfw", "non-nsfw")}
    pos_label, neg_label = default_labels.get(args.task, (args.pos_label, args.neg_label))
    if not pos_label or not neg_label:
        parser.error("binary needs --pos-label and --neg-label")
    positives = _gather(args.positive, args, args.positive_where)
    negatives = _gather(args.negative, args, args.negative_where)
    if args.task == "nsfw":
        if not args.wordlist:
            parser.error("nsfw needs --wordlist (weak labels) and --corpus")
        weak_pos, weak_neg = label_by_wordlist(_gather(args.corpus, args, None), args.wordlist, args.min_hits)
        positives, negatives = positives + weak_pos, negatives + weak_neg
    if args.max_per_class:
        rng = random.Random(args.seed)
        positives = rng.sample(positives, min(len(positives), args.max_per_class))
        negatives = rng.sample(negatives, min(len(negatives), args.max_per_class))
    if not positives or not negatives:
        parser.error(f"need examples of both classes (got {len(positives)} positive, {len(negatives)} negative)")
    metrics = train_binary(positives, negatives, pos_label, neg_label, args.out, seed=args.seed, holdout=args.holdout,
                           epoch=args.epoch, lr=args.lr, dim=args.dim, word_ngrams=args.word_ngrams,
                           quantize=not args.no_quantize)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
