"""Text normalization `deobfuscate-v1`: masked and disguised spellings back to their plain form.

People who write obscene or hateful text online disguise the words that filters look for:
asterisks and symbols inside words ("f*ck", "f**king", "*ssh*le"), leetspeak ("sh1t", "$hit",
"c0ck"), letter spacing ("f u c k", "f.u.c.k"), repeated letters ("fuuuuck"), accents and
look-alike characters from other scripts ("fück", Cyrillic "а" in a Latin word, fullwidth or
mathematical letters). The NSFW and hate models declare this normalization (registry entry and
metrics file: "text_normalization": "deobfuscate-v1"); training and prediction both apply it, so
the models see "fuck" whatever the spelling.

A masked letter is ambiguous ("s**t": shit, slut, smut, ...), so nothing is guessed: a disguised
word is replaced only when it matches a word of the shipped vocabulary (`deobfuscate-v1.words`:
the single-word terms of the LDNOOBW list and RefinedWeb's banned-word lists, plus their
inflections attested in the training corpora, most frequent first; the first match wins).
Everything else is left as it is, which is what keeps ordinary text unchanged: markdown emphasis
loses its asterisks ("**bold**" -> "bold") but no word changes, and prices ("$5"), arithmetic
("3*4"), version numbers ("v1.2.3"), product codes ("mp3", "covid19"), code ("**kwargs",
"a*b") and Sieve's PII masks ("|||EMAIL_ADDRESS|||") stay as they are.

Cost: a text without a letter next to a symbol or digit, without three repeated letters, without
spaced single letters and without non-ASCII letters is returned as it is after one regex search
(the common case); otherwise only the suspicious tokens are looked at.

The vocabulary is rebuilt (only needed when the word lists change; the result is versioned with
the normalization, so a change means a new name) with
    python -m filters.deobfuscate --data-root ../shared/data --out filters/deobfuscate-v1.words
"""
from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterable

NAME = "deobfuscate-v1"
VOCABULARY = Path(__file__).resolve().parent / "deobfuscate-v1.words"
MIN_LENGTH = 4  # shorter disguised tokens ("a*s", "h8", "4k") are too ambiguous to resolve

# Characters standing for a letter inside a word: masks (any letter) and leetspeak (given letters).
MASKS = "*#%_"
LEET = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "aeiou", "$": "s", "!": "i", "|": "il", "+": "t"}
_CORE_CHARS = "a-z0-9" + re.escape(MASKS + "".join(LEET))
_SIGNAL = "*#%_@$!|+0-9"
# A letter next to a symbol or digit, three repeated letters, spaced single letters, non-ASCII:
# the only texts that need work.
_PRECHECK = re.compile(rf"[a-z][{_SIGNAL}]|[{_SIGNAL}][a-z]|([a-z])\1\1|"
                       r"(?<![a-z0-9])[a-z][ .\-_*]{1,2}[a-z][ .\-_*]{1,2}[a-z](?![a-z0-9])|[^\x00-\x7f]",
                       re.IGNORECASE)
# Where a token needs a look (a letter next to a symbol or digit, three repeated letters), and the
# token around it: found in two steps, as a token-wide pattern backtracks over every word.
_HINT = re.compile(rf"[a-z][{_SIGNAL}]|[{_SIGNAL}][a-z]|([a-z])\1\1")
_CORE_RUN = re.compile(rf"[{_CORE_CHARS}]+")
_CORE_SET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789" + MASKS + "".join(LEET))
_SPACED = re.compile(r"(?<![a-z0-9])[a-z](?:[ .\-_*]{1,2}[a-z]){2,}(?![a-z0-9])")
_PII_MASK = re.compile(r"\|\|\|[a-z_]+\|\|\|")

# Look-alike letters of other scripts (lowercase), applied inside words that also hold Latin letters.
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "и": "u", "к": "k", "м": "m", "н": "h", "о": "o",
    "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "η": "n",
    "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "τ": "t", "υ": "u", "χ": "x",
    "ω": "w", "ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ı": "i",
}
# Symbols used as masks inside words ("f♥ck", "f•ck").
_SYMBOL_MASKS = "•·♥❤★☆✱✳✪"


@lru_cache(maxsize=1)
def _fold_table() -> dict[int, str]:
    """Code point -> replacement: accented Latin, fullwidth, circled and mathematical letters to
    plain lowercase ASCII (by their compatibility decomposition), symbol masks to '*'."""
    table: dict[int, str] = {ord(c): "*" for c in _SYMBOL_MASKS}
    ranges = [(0xC0, 0x250), (0x1E00, 0x1F00), (0x24B6, 0x24EA), (0xFF21, 0xFF5B), (0x1D400, 0x1D800)]
    for start, end in ranges:
        for code in range(start, end):
            base = "".join(c for c in unicodedata.normalize("NFKD", chr(code)) if not unicodedata.combining(c))
            if base.isascii() and base.isalpha():
                table[code] = base.lower()
    for char, plain in _CONFUSABLES.items():
        if ord(char) < 0x250:
            table[ord(char)] = plain
    return table


# Runs of the characters `_fold_table` may map (a few ranges: a class of every mapped code point
# made the scan ~100x slower), and words mixing look-alikes with Latin letters (anchored at word
# starts, so no word is rescanned from each of its characters).
_FOLD_RUN = re.compile("[\u00c0-\u024f\u1e00-\u1eff\u24b6-\u24e9\uff21-\uff5a\U0001d400-\U0001d7ff"
                       + re.escape(_SYMBOL_MASKS) + "]+")
_CONFUSABLE_CLASS = "[" + re.escape("".join(_CONFUSABLES)) + "]"
_MIXED_SIGNAL = re.compile(f"[a-z]{_CONFUSABLE_CLASS}|{_CONFUSABLE_CLASS}[a-z]")
_MIXED = re.compile(rf"(?<!\w)\w*(?:[a-z]{_CONFUSABLE_CLASS}|{_CONFUSABLE_CLASS}[a-z])\w*")


def _fold_unicode(text: str) -> str:
    """Accents, compatibility letters and symbol masks folded; look-alikes of other scripts
    mapped only inside words that mix them with Latin letters (a Russian word stays Russian)."""
    table = _fold_table()
    text = _FOLD_RUN.sub(lambda m: m.group().translate(table), text)
    if _MIXED_SIGNAL.search(text):
        text = _MIXED.sub(lambda m: "".join(_CONFUSABLES.get(c, c) for c in m.group()), text)
    return text


class Vocabulary:
    """Known words by length, indexed by (length, position, letter) for masked-word lookup."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words: list[str] = []
        self.rank: dict[str, int] = {}
        self.index: dict[tuple[int, int, str], set[int]] = {}
        self.by_length: dict[int, set[int]] = {}
        for word in words:
            if word in self.rank or not word.isascii() or not word.isalpha():
                continue
            i = len(self.words)
            self.rank[word] = i
            self.words.append(word)
            self.by_length.setdefault(len(word), set()).add(i)
            for pos, letter in enumerate(word):
                self.index.setdefault((len(word), pos, letter), set()).add(i)

    def match(self, slots: list[str]) -> str | None:
        """The most frequent word whose letter at each position is in that slot ('' = any letter)."""
        size = len(slots)
        candidates: set[int] | None = None
        for pos, allowed in enumerate(slots):
            if len(allowed) == 1:
                found = self.index.get((size, pos, allowed), set())
                candidates = found if candidates is None else candidates & found
                if not candidates:
                    return None
        if candidates is None:
            candidates = self.by_length.get(size, set())
        for i in sorted(candidates):
            word = self.words[i]
            if all(not allowed or word[pos] in allowed for pos, allowed in enumerate(slots)):
                return word
        return None


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    lines = VOCABULARY.read_text(encoding="utf-8").splitlines()
    return Vocabulary(line.split("\t")[0] for line in lines if line and not line.startswith("#"))


def _runs(core: str) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for char in core:
        if runs and runs[-1][0] == char:
            runs[-1] = (char, runs[-1][1] + 1)
        else:
            runs.append((char, 1))
    return runs


def _resolve(core: str, vocab: Vocabulary) -> str | None:
    """The vocabulary word `core` disguises, or None. Runs of 3+ equal letters may stand for one
    or two; each mask for one letter; each leet character for its letters."""
    letters = sum(c.isalpha() for c in core)
    if len(core) < MIN_LENGTH or letters < 2 or letters < len(core) - letters:
        return None
    options: list[list[list[str]]] = []
    for char, count in _runs(core):
        if "a" <= char <= "z":
            options.append([[char] * count] if count < 3 else [[char], [char] * 2])
        elif char in MASKS:
            options.append([[""] * count])
        elif char in LEET:
            options.append([[LEET[char]] * count])
        else:
            return None
    variants: list[list[str]] = [[]]
    for choice in options:
        variants = [v + c for v in variants for c in choice][:16]
    for slots in variants:
        if len(slots) >= MIN_LENGTH and (word := vocab.match(slots)):
            return word
    return None


def _tokens(text: str) -> str:
    """`text` with each token that `_HINT` points into replaced by `_token` of it."""
    pieces, done = [], 0
    for hint in _HINT.finditer(text):
        if hint.start() < done:
            continue  # inside a token already looked at
        start = hint.start()
        while start > done and text[start - 1] in _CORE_SET:
            start -= 1
        end = _CORE_RUN.match(text, hint.start()).end()
        pieces += [text[done:start], _token(text[start:end])]
        done = end
    return "".join(pieces) + text[done:] if pieces else text


def _token(token: str) -> str:
    if _PII_MASK.fullmatch(token):
        return token
    body = token.rstrip("!")  # exclamation marks after a word are punctuation, kept
    tail, vocab = token[len(body):], vocabulary()
    if word := _resolve(body, vocab):
        return word + tail
    inner = body.strip("*")
    if inner and inner != body:  # emphasis or footnote marks around a word: "*word*", "**bold**"
        if inner.isalpha():
            return inner + tail
        if word := _resolve(inner, vocab):
            return word + tail
    return token


def _spaced(match: re.Match) -> str:
    """Letters spaced out ("f u c k", "f.u.c.k"): the longest vocabulary word they spell, joined."""
    text = match.group()
    letters = [(m.start(), m.group()) for m in re.finditer(r"[a-z]", text)]
    rank = vocabulary().rank
    for size in range(len(letters), MIN_LENGTH - 1, -1):
        for start in range(len(letters) - size + 1):
            word = "".join(c for _, c in letters[start:start + size])
            if word in rank:
                begin, end = letters[start][0], letters[start + size - 1][0] + 1
                return text[:begin] + word + text[end:]
    return text


def deobfuscate(text: str) -> str:
    """`text` with disguised spellings of vocabulary words in plain form (lowercased when anything
    was looked at; returned unchanged, the same object, when there is nothing to look at)."""
    if not _PRECHECK.search(text):
        return text
    text = text.lower()
    if not text.isascii():
        text = _fold_unicode(text)
    text = _tokens(text)
    return _SPACED.sub(_spaced, text)


# ---------------------------------------------------------------- building the vocabulary

_SUFFIXES = ("s", "es", "ed", "er", "ers", "ing", "in", "y", "ies", "head", "heads", "hole", "holes")


def build_vocabulary(wordlists: list[Path], corpora: list[Path], min_count: int = 3) -> list[tuple[str, int]]:
    """(word, count): the single-word terms of `wordlists` (letters only, 3+ letters) and their
    inflections (a suffix added or removed) attested `min_count` times in `corpora`, most
    frequent first (the order decides between words a mask fits equally)."""
    terms = set()
    for path in wordlists:
        for line in path.read_text(encoding="utf-8").splitlines():
            term = line.strip().lower()
            if len(term) >= 3 and term.isascii() and term.isalpha():
                terms.add(term)
    counts: Counter = Counter()
    for path in corpora:
        import gzip

        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                counts.update(re.findall(r"[a-z]+", line.lower()))
    forms = set(terms)
    for term in terms:
        for suffix in _SUFFIXES:
            forms.add(term + suffix)
            if term.endswith(suffix) and len(term) - len(suffix) >= 3:
                forms.add(term[: -len(suffix)])
    kept = {w for w in forms if w in terms or counts[w] >= min_count}
    return sorted(((w, counts[w]) for w in kept), key=lambda wc: (-wc[1], wc[0]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m filters.deobfuscate", description="rebuild the vocabulary")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--out", default=str(VOCABULARY))
    args = p.parse_args(argv)
    root = Path(args.data_root)
    lists = sorted((root / "toxicity/wordlists").glob("*.txt"))
    corpora = sorted(p for p in (root / "toxicity").rglob("*") if p.suffix in (".csv", ".txt", ".json", ".gz")
                     and "wordlists" not in p.parts)
    words = build_vocabulary(lists, corpora)
    header = ["# deobfuscate-v1 vocabulary: word<TAB>count in the training corpora, most frequent first.",
              "# Terms from LDNOOBW (CC-BY-4.0, github.com/LDNOOBW) and RefinedWeb's banned-word lists",
              "# (via mlfoundations/dclm, MIT), plus inflections attested in ../shared/data/toxicity.",
              "# Rebuilt by: python -m filters.deobfuscate --data-root ../shared/data"]
    Path(args.out).write_text("\n".join(header + [f"{w}\t{c}" for w, c in words]) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
