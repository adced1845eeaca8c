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
spaced single letters and without non-ASCII letters is returned as it is after one regex search;
otherwise (most real pages: "mp3", "www", "2020s", "Über") one numba-compiled pass over the code
points per step finds what that step's regexes would match (the tokens holding a hint, whether a
foldable or look-alike letter or spaced letters occur at all), so the regexes and the vocabulary
lookups run only where they find something, with the same result as running them everywhere.

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

import numpy as np
from numba import njit

from filters.text import code_points

NAME = "deobfuscate-v1"
VOCABULARY = Path(__file__).resolve().parent / "deobfuscate-v1.words"
MIN_LENGTH = 4  # shorter disguised tokens ("a*s", "h8", "4k") are too ambiguous to resolve

# Characters standing for a letter inside a word: masks (any letter) and leetspeak (given letters).
MASKS = "*#%_"
LEET = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "aeiou", "$": "s", "!": "i", "|": "il", "+": "t"}
_SIGNAL = "*#%_@$!|+0-9"
# A letter next to a symbol or digit, three repeated letters, spaced single letters, non-ASCII:
# the only texts that need work.
_PRECHECK = re.compile(rf"[a-z][{_SIGNAL}]|[{_SIGNAL}][a-z]|([a-z])\1\1|"
                       r"(?<![a-z0-9])[a-z][ .\-_*]{1,2}[a-z][ .\-_*]{1,2}[a-z](?![a-z0-9])|[^\x00-\x7f]",
                       re.IGNORECASE)
# A token needs a look when it holds a hint: a letter next to a symbol or digit, or three repeated
# letters (`[a-z][{_SIGNAL}]|[{_SIGNAL}][a-z]|([a-z])\1\1`); the token is the run of `_CORE_SET`
# characters around it. `_hint_runs` finds both in one compiled pass (the regex took ~110 µs on a
# 5,000-character page; tests/test_deobfuscate.py keeps the regex version and compares them).
_CORE_SET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789" + MASKS + "".join(LEET))
_SPACED = re.compile(r"(?<![a-z0-9])[a-z](?:[ .\-_*]{1,2}[a-z]){2,}(?![a-z0-9])")
_PII_MASK = re.compile(r"\|\|\|[a-z_]+\|\|\|")


def _ascii_lookup(chars: Iterable[str]) -> np.ndarray:
    """ASCII code point -> whether it is one of `chars`, for the compiled scans."""
    table = np.zeros(128, np.bool_)
    for char in chars:
        table[ord(char)] = True
    return table


_IS_CORE = _ascii_lookup(_CORE_SET)
_IS_SIGNAL = _ascii_lookup("*#%_@$!|+0123456789")  # `_SIGNAL`
_IS_SPACER = _ascii_lookup(" .-_*")


@njit(cache=True, nogil=True, inline="always")
def _in(table: np.ndarray, code: np.uint32) -> bool:
    """Whether `code` is marked in the lookup `table` (code points past its end are not)."""
    return code < len(table) and table[code]


@njit(cache=True, nogil=True, inline="always")
def _is_lower(code: np.uint32) -> bool:
    """[a-z], as the regexes mean it (ASCII only)."""
    return 97 <= code <= 122


@njit(cache=True, nogil=True)
def _hint_runs(codes: np.ndarray, is_core: np.ndarray, is_signal: np.ndarray) -> np.ndarray:
    """Flat (start, end) pairs of the maximal runs of `_CORE_SET` characters that hold a hint:
    the tokens `_tokens` looks at (a hint is made of core characters, so it lies inside one run)."""
    n = len(codes)
    out = np.empty(n + 2, np.int64)
    count, i = 0, 0
    while i < n:
        if not _in(is_core, codes[i]):
            i += 1
            continue
        start, hit = i, False
        while i < n and _in(is_core, codes[i]):
            if not hit and i + 1 < n:
                a, b = codes[i], codes[i + 1]
                hit = ((_is_lower(a) and _in(is_signal, b)) or (_in(is_signal, a) and _is_lower(b))
                       or (_is_lower(a) and a == b and i + 2 < n and codes[i + 2] == a))
            i += 1
        if hit:
            out[count], out[count + 1] = start, i
            count += 2
    return out[:count]


@njit(cache=True, nogil=True)
def _any_next_to_lower(codes: np.ndarray, table: np.ndarray) -> bool:
    """Whether a code point marked in `table` stands next to an ASCII lowercase letter (where
    `_MIXED` can match)."""
    for i in range(len(codes) - 1):
        a, b = codes[i], codes[i + 1]
        if (_is_lower(a) and _in(table, b)) or (_in(table, a) and _is_lower(b)):
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _next_spaced_letter(codes: np.ndarray, i: int, is_spacer: np.ndarray) -> int:
    """Position of the letter 1 or 2 spacers after position i, as `_SPACED` reads
    them, or -1."""
    n = len(codes)
    if i + 1 < n and _in(is_spacer, codes[i + 1]):
        if i + 2 < n and _is_lower(codes[i + 2]):
            return i + 2
        if i + 3 < n and _in(is_spacer, codes[i + 2]) and _is_lower(codes[i + 3]):
            return i + 3
    return -1


@njit(cache=True, nogil=True)
def _spaced_starts(codes: np.ndarray, is_spacer: np.ndarray) -> np.ndarray:
    """Where a `_SPACED` match can start: a letter not after [a-z0-9] followed by two more, each
    1 or 2 spacers on (every match starts so; whether and where it ends is left to the regex)."""
    out = np.empty(len(codes), np.int64)
    count, after_word = 0, False
    for i in range(len(codes)):
        code = codes[i]
        lower = _is_lower(code)
        if lower and not after_word and i + 1 < len(codes) and _in(is_spacer, codes[i + 1]):
            j = _next_spaced_letter(codes, i, is_spacer)
            if j >= 0 and _next_spaced_letter(codes, j, is_spacer) >= 0:
                out[count] = i
                count += 1
        after_word = lower or 48 <= code <= 57
    return out[:count]


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


# Words mixing look-alikes with Latin letters (anchored at word starts, so no word is rescanned
# from each of its characters).
_CONFUSABLE_CLASS = "[" + re.escape("".join(_CONFUSABLES)) + "]"
_MIXED = re.compile(rf"(?<!\w)\w*(?:[a-z]{_CONFUSABLE_CLASS}|{_CONFUSABLE_CLASS}[a-z])\w*")


_LONGEST_FOLD = 2  # the longest replacement in `_fold_table` ("ß" -> "ss"; the tests check it)


@lru_cache(maxsize=1)
def _fold_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_fold_table` for `_fold_codes`: (offsets, replacements), code point c below len(offsets) - 1
    becoming replacements[offsets[c]:offsets[c + 1]] if that is not empty; and the code points
    of `_CONFUSABLES` as a lookup table."""
    table = _fold_table()
    offsets = np.zeros(max(table) + 2, np.int64)
    for code, plain in table.items():
        offsets[code + 1] = len(plain)
    offsets = np.cumsum(offsets)
    replacements = np.empty(offsets[-1], np.uint32)
    for code, plain in table.items():
        replacements[offsets[code]: offsets[code + 1]] = [ord(c) for c in plain]
    confusable = np.zeros(max(ord(c) for c in _CONFUSABLES) + 1, np.bool_)
    confusable[[ord(c) for c in _CONFUSABLES]] = True
    return offsets, replacements, confusable


@njit(cache=True, nogil=True)
def _fold_codes(codes: np.ndarray, offsets: np.ndarray, replacements: np.ndarray) -> tuple[np.ndarray, bool]:
    """(`codes` through `_fold_table`, whether any changed)."""
    out = np.empty(_LONGEST_FOLD * len(codes), np.uint32)
    size, changed = 0, False
    for code in codes:
        if code < len(offsets) - 1 and offsets[code + 1] > offsets[code]:
            for k in range(offsets[code], offsets[code + 1]):
                out[size] = replacements[k]
                size += 1
            changed = True
        else:
            out[size] = code
            size += 1
    return out[:size], changed


def _fold_unicode(text: str, codes: np.ndarray) -> tuple[str, np.ndarray]:
    """Accents, compatibility letters and symbol masks folded; look-alikes of other scripts
    mapped only inside words that mix them with Latin letters (a Russian word stays Russian).

    Folding maps every character of `_fold_table` in one compiled pass (`str.translate` or a
    regex over the mapped ranges took 30-120 µs on a page); the look-alike regex runs only if
    one stands next to a Latin letter. `codes` are the code points of `text`; returns both folded."""
    offsets, replacements, confusable = _fold_arrays()
    codes, changed = _fold_codes(codes, offsets, replacements)
    if changed:
        text = codes.tobytes().decode("utf-32-le", "surrogatepass")
    if _any_next_to_lower(codes, confusable):
        text = _MIXED.sub(lambda m: "".join(_CONFUSABLES.get(c, c) for c in m.group()), text)
        codes = code_points(text)
    return text, codes


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


def _tokens(text: str, codes: np.ndarray) -> tuple[str, np.ndarray]:
    """`text` with each token that holds a hint (the whole run of `_CORE_SET` characters
    around the hint) replaced by `_token` of it, and its code points (`codes` are those of `text`)."""
    runs = _hint_runs(codes, _IS_CORE, _IS_SIGNAL)
    if not len(runs):
        return text, codes
    pieces, done = [], 0
    for start, end in zip(runs[::2].tolist(), runs[1::2].tolist()):
        pieces += [text[done:start], _token(text[start:end])]
        done = end
    text = "".join(pieces) + text[done:]
    return text, code_points(text)


@lru_cache(maxsize=1 << 14)  # the same tokens recur across pages ("mp3", "www", "2020s")
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
    codes = code_points(text)
    if not text.isascii():
        text, codes = _fold_unicode(text, codes)
    return _spaced_words(*_tokens(text, codes))


def _spaced_words(text: str, codes: np.ndarray) -> str:
    """`_SPACED.sub(_spaced, text)`, the regex tried only where the scan of its code points
    `codes` says a match can start (as `sub` itself goes: left to right, on after each match)."""
    pieces, done = [], 0
    for start in _spaced_starts(codes, _IS_SPACER).tolist():
        if start >= done and (match := _SPACED.match(text, start)):
            pieces += [text[done:start], _spaced(match)]
            done = match.end()
    return "".join(pieces) + text[done:] if pieces else text


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
