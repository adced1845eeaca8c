"""Labelled hate-speech and sexual-content sources, each mapped to Sieve's labels explicitly.

`classify_toxic_speech` means hateful or abusive language aimed at people or groups (slurs,
insults, threats, dehumanization, implicit hate without slurs); profanity alone is not hate, so
labels that mean "offensive" (Davidson class 1, OLID) are left out of training. `classify_nsfw`
means sexual or obscene content. Every source below says what it is, its licence and its mapping
(the model cards print this table); `python -m filters.train toxicity --sources ...` reads them
under --data-root (../shared/data) and tags every example with its source, so that the split,
the per-source balance and the leave-one-source-out evaluation know where it came from.
"""
from __future__ import annotations

import csv
import gzip
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

# (text, positive?) of one source's labelled rows; a third item, when given, names the group of
# rows that must stay on one side of a train / held-out split (a HatemojiBuild original and its
# perturbation with the opposite label).
Rows = Iterator[tuple]
_MARKUP = re.compile(r"https?://\S+|www\.\S+|(?<!\w)@\w+:?|(?<!\w)RT(?!\w)|\[(?:user|url)\]|<(?:user|url)>",
                     re.IGNORECASE)


def clean_markup(text: str) -> str:
    """A post's words without platform furniture: links, @mentions, retweet markers, the [USER] /
    [URL] / <user> placeholders some datasets substitute, '#' off hashtags, HTML entities decoded.
    Each is spread unevenly over one source's labels and absent from web text, so must not be learned."""
    text = _MARKUP.sub(" ", html.unescape(html.unescape(text)))
    return " ".join(re.sub(r"(?<!\w)#(\w)", r"\1", text).split())


@dataclass(frozen=True)
class Source:
    """One labelled data set: what it is, its licence, and how its labels map to Sieve's."""

    name: str
    task: str  # "toxicity" | "nsfw"
    domain: str
    licence: str
    mapping: str  # positive / negative / left out, as the card states it
    read: Callable[[Path], Rows]
    train: bool = True  # False: only evaluated (its labels mean something else)


def _csv(path: Path, **kwargs: str) -> Iterator[dict]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        yield from csv.DictReader(fh, **kwargs)


def _davidson(root: Path) -> Rows:
    for row in _csv(root / "toxicity/davidson/labeled_data.csv"):
        if row["class"] in ("0", "2"):
            yield row["tweet"], row["class"] == "0"


def _tweeteval(task: str) -> Callable[[Path], Rows]:
    def read(root: Path) -> Rows:
        for split in ("train", "val", "test"):
            base = root / "toxicity/tweeteval" / task
            texts = (base / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
            labels = (base / f"{split}_labels.txt").read_text(encoding="utf-8").split()
            yield from ((text, label == "1") for text, label in zip(texts, labels))
    return read


def _toxigen(root: Path) -> Rows:
    for path in sorted((root / "toxicity/toxigen/demonstrations").rglob("*.txt")):
        hateful = path.name.startswith("hate_")
        if hateful or path.name.startswith("neutral_"):
            for line in path.read_text(encoding="utf-8").splitlines():
                yield line.strip().lstrip("-").strip(), hateful


def _ethos(root: Path) -> Rows:
    for row in _csv(root / "toxicity/ethos/Ethos_Dataset_Binary.csv", delimiter=";"):
        share = float(row["isHate"])
        if share >= 0.5 or share == 0:
            yield row["comment"], share >= 0.5


def _edos(root: Path) -> Rows:
    for row in _csv(root / "toxicity/extra/edos/edos_labelled_aggregated.csv"):
        yield row["text"], row["label_sexist"] == "sexist"


def _convabuse_votes(row: dict) -> tuple[int, int, int]:
    """(abusive votes, not-abusive votes, sexual-harassment votes) of one ConvAbuse row."""
    abusive = not_abusive = sexual = 0
    for n in range(1, 9):
        key = f"Annotator{n}_is_abuse"
        if row.get(f"{key}.-1") == "1" or row.get(f"{key}.-2") == "1" or row.get(f"{key}.-3") == "1":
            abusive += 1
        elif row.get(f"{key}.1") == "1" or row.get(f"{key}.0") == "1":
            not_abusive += 1
        sexual += row.get(f"Annotator{n}_sex_harassment") == "1"
    return abusive, not_abusive, sexual


def _convabuse_rows(root: Path) -> Iterator[tuple[dict, tuple[int, int, int]]]:
    for split in ("train", "valid", "test"):
        for row in _csv(root / f"toxicity/extra/convabuse/ConvAbuseEMNLP{split}.csv"):
            yield row, _convabuse_votes(row)


def _convabuse(root: Path) -> Rows:
    for row, (abusive, not_abusive, _) in _convabuse_rows(root):
        if abusive != not_abusive:
            yield row["user"], abusive > not_abusive


def _convabuse_sexual(root: Path) -> Rows:
    for row, (abusive, not_abusive, sexual) in _convabuse_rows(root):
        if 2 * sexual > abusive + not_abusive:
            yield row["user"], True
        elif not_abusive > abusive:
            yield row["user"], False


def _hatemoji(root: Path) -> Rows:
    for split in ("train", "validation", "test"):
        for row in _csv(root / f"toxicity/extra/hatemojibuild/{split}.csv"):
            pair = sorted((row["entry_id"], row["matched_id"] or row["entry_id"]))
            yield row["text"], row["label_gold"] == "1", "-".join(pair)


def _mlma(root: Path) -> Rows:
    for row in _csv(root / "toxicity/extra/mlma/en_dataset_with_stop_words.csv"):
        yield row["tweet"], row["sentiment"] != "normal"


def _fox_news(root: Path) -> Rows:
    with open(root / "toxicity/extra/fox_news/fox-news-comments.json", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                yield row["text"], int(row["label"]) == 1


def _wiki(root: Path) -> Rows:
    for row in _csv(root / "toxicity/extra/wiki_toxicity_idterm/toxicity_nonfuzzed_testset.csv"):
        yield row["comment"], row["toxic"] == "True"


def _moderation(root: Path) -> Iterator[dict]:
    with gzip.open(root / "toxicity/extra/openai_moderation/samples-1680.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("S3") != 1:  # sexual content involving minors: never used
                yield row


def _moderation_hate(root: Path) -> Rows:
    for row in _moderation(root):
        if row.get("H") == 1 or row.get("HR") == 1:
            yield row["prompt"], True
        elif row.get("H") == 0 and row.get("HR") == 0:
            yield row["prompt"], False


def _moderation_sexual(root: Path) -> Rows:
    for row in _moderation(root):
        if row.get("S") in (0, 1):
            yield row["prompt"], row["S"] == 1


SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("davidson", "toxicity", "tweets", "MIT",
           "class 0 (hate speech) toxic; class 2 (neither) non-toxic; class 1 (offensive language) left out", _davidson),
    Source("hateval", "toxicity", "tweets (TweetEval hate = SemEval-2019 HatEval)",
           "TweetEval terms; source data probably CC-BY-NC (see the data README)",
           "1 (hateful against immigrants or women) toxic; 0 non-toxic; train+val+test", _tweeteval("hate")),
    Source("toxigen", "toxicity", "author-written statements about 13 groups", "MIT",
           "hate_* files toxic; neutral_* files non-toxic (implicit hate, no slurs)", _toxigen),
    Source("ethos", "toxicity", "YouTube/Reddit comments", "GPL-3.0",
           "isHate >= 0.5 toxic; isHate = 0 non-toxic; 0 < isHate < 0.5 left out", _ethos),
    Source("edos", "toxicity", "Gab and Reddit posts (SemEval-2023 EDOS)", "CC0-1.0",
           "label_sexist 'sexist' toxic; 'not sexist' non-toxic", _edos),
    Source("convabuse", "toxicity", "user turns to conversational agents", "CC-BY-4.0",
           "annotator majority abusive (is_abuse -1/-2/-3) toxic; majority not abusive (1 or 0) non-toxic; ties left out",
           _convabuse),
    Source("hatemojibuild", "toxicity", "adversarial human-written posts, emoji-based hate and perturbations", "CC-BY-4.0",
           "label_gold 1 toxic; 0 non-toxic (incl. the non-hateful perturbations)", _hatemoji),
    Source("mlma", "toxicity", "tweets collected by hate keywords", "MIT",
           "sentiment exactly 'normal' non-toxic; any hostility label toxic (as the MLMA README says)", _mlma),
    Source("fox_news", "toxicity", "news-site comments (10 threads)", "MIT (README)",
           "label 1 (hateful) toxic; 0 non-toxic", _fox_news),
    Source("wiki_idterm", "toxicity", "Wikipedia talk comments with identity terms", "Apache-2.0 (repo)",
           "toxic True toxic; False non-toxic", _wiki),
    Source("openai_moderation", "toxicity", "mixed moderation text (OpenAI 2022)", "MIT",
           "H (hate) or HR (harassment) = 1 toxic; H = 0 and HR = 0 non-toxic; unknown left out; S3 = 1 never used",
           _moderation_hate),
    Source("olid", "toxicity", "tweets (TweetEval offensive = OLID)", "TweetEval terms (OLID licence not stated)",
           "evaluated only: 1 offensive vs 0 not offensive; offensive includes profanity, which is not hate",
           _tweeteval("offensive"), train=False),
    Source("openai_sexual", "nsfw", "mixed moderation text (OpenAI 2022)", "MIT",
           "S (sexual) = 1 nsfw; S = 0 non-nsfw; unknown left out; S3 = 1 never used", _moderation_sexual),
    Source("convabuse_sexual", "nsfw", "user turns to conversational agents", "CC-BY-4.0",
           "majority of annotators sexual harassment nsfw; majority not abusive non-nsfw; other abuse left out",
           _convabuse_sexual),
]}


def source_rows(name: str, root: Path) -> Iterator[tuple[str, bool, str]]:
    """(clean text, positive?, group id) of a source's labelled rows, empty texts dropped."""
    if name not in SOURCES:
        raise ValueError(f"unknown labelled source {name!r} (--sources); known: {', '.join(SOURCES)}")
    for i, (text, positive, *group) in enumerate(SOURCES[name].read(Path(root))):
        if text := clean_markup(text):
            yield text, positive, f"{name}#{group[0] if group else i}"
