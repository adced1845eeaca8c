"""Sieve's byte-level BPE tokenizer (the GPT-2 family's algorithm): training and encoding.

Special tokens: a special id comes only from the pipeline (the end-of-text id it appends after
each document) or from an explicit `allowed_special` ("all" or a set of token strings, as in
tiktoken). Document text is always ordinary text: a web page about language models that contains
the literal string `<|endoftext|>` encodes it as bytes and merges, never as a document boundary,
and decodes back to the same string.

Training treats special-token strings the way encoding will see them:
- `train_bpe_from_texts` (and the tokenize stage) count each document's pre-tokens as ordinary
  text, exactly as `encode(document)` pre-tokenizes it, so the merges fit what is encoded.
- `train_bpe` reads a file in the CS336/TinyStories layout, where the special tokens are the
  delimiters its writer put between documents: the file is split at them (no merge crosses them)
  and they are not counted, exactly as `encode_iterable(file, allowed_special="all")` encodes it.
Either way no merge may produce a special token's bytes (the pair is never merged), so a byte
string has one id and ordinary text can never yield a special id.

Training: pre-tokenized with the GPT-2 regex, pre-token frequencies counted in parallel over
chunks of the file (only the counts are kept, never the corpus). Merges are learned by frequency,
ties broken by the lexicographically greater pair of byte strings; after each merge only the pairs
next to the merge sites change (an index pair -> words, a lazy max-heap of pair counts).

Encoding: `Tokenizer.encode` is the reference (per pre-token, merge the adjacent pair with the
lowest merge rank until none is left). `Tokenizer.encode_fast` gives the same ids through
tiktoken's Rust core built from OUR ranks (no download), and falls back to the reference whenever
the two could differ (see `Tokenizer.fast_path_available` and `unicode_disagreements`). Allowed
special tokens are split out by Sieve in both paths, longest match first.
"""
from __future__ import annotations

import heapq
import json
import multiprocessing as mp
import os
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Collection, Iterable, Iterator, Literal

import numpy as np
import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRETOKEN = regex.compile(GPT2_PATTERN)
# A pre-token always ends between a non-space and a whitespace character, whatever text follows:
# cutting there (outside special tokens) pre-tokenizes both sides exactly as the whole text.
_SAFE_CUT = regex.compile(r"\S(?=\s)")
_SAFE_CUT_BYTES = regex.compile(rb"[\x21-\x7e](?=[\t\n\r ])")  # the same, ASCII only, on raw bytes
CHUNK_BYTES = 16 << 20

Merges = list[tuple[bytes, bytes]]
Vocab = dict[int, bytes]
AllowedSpecial = Literal["all"] | Collection[str]  # which special-token strings in a text become special ids


# ---------------------------------------------------------------- pre-tokenization

def special_splitter(special_tokens: list[str]) -> regex.Pattern | None:
    """Regex that splits on special tokens, longest first (so overlapping specials pick the longest)."""
    if not special_tokens:
        return None
    ordered = sorted(set(special_tokens), key=len, reverse=True)
    return regex.compile("(" + "|".join(regex.escape(s) for s in ordered) + ")")


def count_pretokens(text: str, special_tokens: list[str]) -> Counter[bytes]:
    """Pre-token (as UTF-8 bytes) frequencies of `text` split at `special_tokens` (delimiters,
    not counted). Pass [] for a document's own text: its special-token strings are ordinary text."""
    counts: Counter[str] = Counter()
    splitter = special_splitter(special_tokens)
    specials = set(special_tokens)
    for part in (splitter.split(text) if splitter else [text]):
        if part and part not in specials:
            counts.update(_PRETOKEN.findall(part))
    return Counter({k.encode("utf-8", "surrogatepass"): v for k, v in counts.items()})


def _spans_special(data: bytes, cut: int, specials: list[bytes]) -> bool:
    """Whether byte offset `cut` falls strictly inside an occurrence of a special token."""
    for special in specials:
        start = data.find(special, max(0, cut - len(special) + 1), cut + len(special) - 1)
        if start != -1 and start < cut < start + len(special):
            return True
    return False


def _next_cut(window: bytes, start: int, specials: list[bytes]) -> int | None:
    """First offset >= `start` in `window` where a chunk may end: the start of a special token
    (not inside a longer one), else a non-space/whitespace boundary outside special tokens."""
    found = sorted(i for s in specials if (i := window.find(s, start)) != -1)
    for cut in found:
        if not _spans_special(window, cut, specials):
            return cut
    for match in _SAFE_CUT_BYTES.finditer(window, start):
        if not _spans_special(window, match.end(), specials):
            return match.end()
    return None


def chunk_boundaries(fh: BinaryIO, size: int, chunk_bytes: int, special_tokens: list[str]) -> list[int]:
    """Byte offsets cutting a file into ~chunk_bytes pieces such that no pre-token or special token
    spans two pieces: cut at the next special token, else at the next space after a word."""
    specials = [s.encode("utf-8") for s in special_tokens]
    pad = max(map(len, specials), default=0)  # look back far enough to see a special we are inside
    bounds = [0]
    position = chunk_bytes
    while position < size:
        start = max(bounds[-1], position - pad)
        fh.seek(start)
        window = fh.read(position - start + (1 << 20))
        cut = _next_cut(window, position - start, specials)
        if cut is None:  # a megabyte without a safe cut: look further on
            position = start + len(window)
            continue
        bounds.append(start + cut)
        position = bounds[-1] + chunk_bytes
    return bounds + [size]


def _count_chunk(args: tuple[str, int, int, list[str]]) -> Counter[bytes]:
    path, start, end, special_tokens = args
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    return count_pretokens(data.decode("utf-8", errors="replace"), special_tokens)


def count_file_pretokens(path: str | os.PathLike, special_tokens: list[str], num_workers: int | None = None,
                         chunk_bytes: int = CHUNK_BYTES) -> Counter[bytes]:
    """Pre-token counts of a UTF-8 text file: chunks counted in parallel, merged as they finish."""
    path = str(path)
    size = os.path.getsize(path)
    workers = num_workers or os.cpu_count() or 1
    chunk_bytes = min(chunk_bytes, max(1 << 20, size // (4 * workers) + 1))  # small files: every worker busy
    with open(path, "rb") as fh:
        bounds = chunk_boundaries(fh, size, chunk_bytes, special_tokens)
    jobs = [(path, a, b, special_tokens) for a, b in zip(bounds, bounds[1:])]
    workers = min(workers, len(jobs))
    total: Counter[bytes] = Counter()
    if workers <= 1:
        for job in jobs:
            total.update(_count_chunk(job))
        return total
    with mp.get_context("fork").Pool(workers) as pool:
        for counts in pool.imap_unordered(_count_chunk, jobs):
            total.update(counts)
    return total


# ---------------------------------------------------------------- training

def _descending(token: bytes) -> tuple[int, ...]:
    """Sort key that orders byte strings in reverse (so a min-heap pops the greatest pair first)."""
    return tuple(255 - b for b in token) + (256,)


def _merge_word(word: list[int], a: int, b: int, new_id: int, freq: int,
                delta: defaultdict[tuple[int, int], int]) -> tuple[list[int], list[tuple[int, int]]] | None:
    """`word` with each (a, b) replaced by new_id left to right, and the pairs it created.

    Adds to `delta` the count changes of the neighbouring pairs (x, a) -> (x, new) and
    (b, y) -> (new, y), weighted by the word's frequency; None if (a, b) is not in the word.
    """
    merged: list[int] = []
    created: list[tuple[int, int]] = []
    i, n, found = 0, len(word), False
    while i < n:
        if word[i] == a and i + 1 < n and word[i + 1] == b:
            found = True
            if merged:
                delta[(word[i - 1], a)] -= freq
                created.append((merged[-1], new_id))
                delta[created[-1]] += freq
            if i + 2 < n and not (word[i + 2] == a and i + 3 < n and word[i + 3] == b):
                # (a next merge site's left neighbour is counted by that site)
                delta[(b, word[i + 2])] -= freq
                created.append((new_id, word[i + 2]))
                delta[created[-1]] += freq
            merged.append(new_id)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return (merged, created) if found else None


def train_bpe_from_counts(counts: Counter[bytes] | dict[bytes, int], vocab_size: int,
                          special_tokens: list[str]) -> tuple[Vocab, Merges]:
    """BPE merges from pre-token counts (see `train_bpe`). A pair whose bytes would spell a special
    token is never merged: that string keeps a single id, the special one, which text never yields."""
    special_bytes = {token.encode("utf-8") for token in special_tokens}
    vocab: Vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    order = {i: _descending(token) for i, token in vocab.items()}
    words = [list(word) for word in counts]
    freqs = list(counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    pair_words: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            pair_words[pair].add(w)
    # Heap entries (-count, reversed bytes of a, of b, pair): most frequent first, then greatest pair.
    heap = [(-c, order[a], order[b], (a, b)) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    merges: Merges = []
    while len(vocab) < vocab_size and heap:
        negative, _, _, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -negative:
            continue  # stale: this pair's count changed after the entry was pushed
        a, b = pair
        if vocab[a] + vocab[b] in special_bytes:
            continue  # popped for good; pushed again (and skipped again) only if its count changes
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        order[new_id] = order[a][:-1] + order[b]  # = _descending(vocab[new_id])
        merges.append((vocab[a], vocab[b]))
        delta: defaultdict[tuple[int, int], int] = defaultdict(int)
        for w in pair_words.pop(pair):
            result = _merge_word(words[w], a, b, new_id, freqs[w], delta)
            if result is None:
                continue  # stale index entry: an earlier merge consumed this pair here
            words[w], created = result
            for new_pair in created:
                pair_words[new_pair].add(w)
        del pair_counts[pair]
        delta.pop(pair, None)  # (a, b) next to itself, e.g. 'a a a': gone with the merge
        for changed, change in delta.items():
            if not change:
                continue
            count = pair_counts[changed] = pair_counts[changed] + change
            if count > 0:
                heapq.heappush(heap, (-count, order[changed[0]], order[changed[1]], changed))
            else:
                del pair_counts[changed]
    return vocab, merges


def train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str],
              num_workers: int | None = None) -> tuple[Vocab, Merges]:
    """Train a byte-level BPE on a UTF-8 text file whose documents are delimited by special tokens.

    The file is split at `special_tokens` (as `encode_iterable(file, allowed_special="all")`
    encodes it): no merge crosses them and they are not counted. Returns the vocab (id -> bytes: the 256 bytes, then the special tokens, then one token per
    merge) and the merges in order of creation. `num_workers` processes count pre-tokens
    (default: all CPUs).
    """
    counts = count_file_pretokens(input_path, special_tokens, num_workers)
    return train_bpe_from_counts(counts, vocab_size, special_tokens)


def train_bpe_from_texts(texts: Iterable[str], vocab_size: int, special_tokens: list[str]
                         ) -> tuple[Vocab, Merges]:
    """Train from an iterable of documents, counting pre-tokens as it streams.

    A document's special-token strings are ordinary text, counted as `encode(document)` sees them;
    `special_tokens` only reserves their ids."""
    counts: Counter[bytes] = Counter()
    for text in texts:
        counts.update(count_pretokens(text, []))
    return train_bpe_from_counts(counts, vocab_size, special_tokens)


# ---------------------------------------------------------------- GPT-2 file format

@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used in vocab.json and merges.txt."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _to_unicode(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def _from_unicode(text: str, where: str) -> bytes:
    inverse = _unicode_to_bytes()
    try:
        return bytes(inverse[c] for c in text)
    except KeyError as exc:
        raise ValueError(f"{where}: {text!r} has {exc.args[0]!r}, not a GPT-2 byte-to-unicode character") from None


# ---------------------------------------------------------------- where tiktoken may disagree

@lru_cache(maxsize=1)
def unicode_disagreements() -> np.ndarray:
    r"""Boolean table over code points where tiktoken's pre-tokenizer may differ from ours.

    Both run the GPT-2 regex, but tiktoken's Rust regex and the `regex` module ship different
    Unicode versions, so recently assigned characters can be \p{L} or \p{N} for one and not the
    other. Each class is probed on every code point, "\0\0" + char, with a pattern that merges the
    two NULs into one token only when the class matches the char next to them. Lone surrogates
    are included: tiktoken cannot encode them. Takes about a second, once per process.
    """
    import tiktoken

    codes = np.r_[1:0xD800, 0xE000:0x110000].astype(np.uint32)
    items = np.zeros((len(codes), 3), dtype="<u4")
    items[:, 2] = codes
    text = items.tobytes().decode("utf-32-le")
    chars = codes.astype("<u4").tobytes().decode("utf-32-le")
    ranks = {bytes([i]): i for i in range(256)} | {b"\0\0": 256}
    unsafe = np.zeros(0x110000, dtype=bool)
    unsafe[0xD800:0xE000] = True
    for cls in (r"\p{L}", r"\p{N}", r"\s"):
        probe = tiktoken.Encoding(name="sieve-unicode-probe", pat_str=r"(?s)\x00\x00(?=" + cls + r")|.",
                                  mergeable_ranks=ranks, special_tokens={})
        tokens = np.asarray(probe.encode_ordinary(text))
        markers = tokens[(tokens == 0) | (tokens == 256)]  # one 256 or two 0s per item
        weight = np.where(markers == 256, 2, 1)
        item = (np.cumsum(weight) - weight) // 2
        in_rust = np.zeros(len(codes), dtype=bool)
        in_rust[item[markers == 256]] = True
        matched = "".join(regex.findall(cls, chars)).encode("utf-32-le")
        ours = np.zeros(0x110000, dtype=bool)
        ours[np.frombuffer(matched, dtype="<u4")] = True
        unsafe[codes[in_rust != ours[codes]]] = True
    return unsafe


# ---------------------------------------------------------------- encoding

class Tokenizer:
    """Encode/decode with a byte-level BPE vocab and its merges (plus optional special tokens).

    A special token's id is the first vocab entry with its bytes (appended when there is none) and
    is kept apart from the ordinary tokens: text encodes to a special id only where the caller
    allows it (`allowed_special`)."""

    def __init__(self, vocab: Vocab, merges: Merges, special_tokens: list[str] | None = None) -> None:
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(dict.fromkeys(special_tokens or []))
        first_ids = {token: i for i, token in sorted(self.vocab.items(), reverse=True)}  # first id wins
        for special in self.special_tokens:
            encoded = special.encode("utf-8")
            if len(encoded) == 1:
                raise ValueError(f"special token {special!r} is a single byte: byte-level BPE needs every byte as an ordinary token")
            if encoded not in first_ids:
                first_ids[encoded] = len(self.vocab)
                self.vocab[len(self.vocab)] = encoded
        self.special_ids = {s: first_ids[s.encode("utf-8")] for s in self.special_tokens}
        special_id_set = set(self.special_ids.values())
        ids = {token: i for i, token in sorted(self.vocab.items(), reverse=True) if i not in special_id_set}
        self._ids = ids  # ordinary tokens only
        missing_bytes = [b for b in range(256) if bytes([b]) not in ids]
        if missing_bytes:
            raise ValueError(f"the vocab lacks single-byte tokens for bytes {missing_bytes[:10]} (byte-level BPE needs all 256)")
        # GPT-2's files number the bytes in their byte-to-unicode order, not by value.
        self._byte_ids = [ids[bytes([b])] for b in range(256)]
        self._bytes_are_ids = self._byte_ids == list(range(256))
        special_bytes = {s.encode("utf-8"): s for s in self.special_tokens}
        for rank, (a, b) in enumerate(merges):
            missing = [t for t in (a, b, a + b) if t not in ids]
            if missing and missing[0] in special_bytes:
                raise ValueError(f"merge {rank} ({a!r}, {b!r}) makes the bytes of special token "
                                 f"{special_bytes[missing[0]]!r}, which has no ordinary id in the vocab: "
                                 "ordinary text would encode to the special id (retrain, or choose another special token)")
            if missing:
                raise ValueError(f"merge {rank} ({a!r}, {b!r}): {missing[0]!r} is not in the vocab")
        self._rank = {(ids[a], ids[b]): r for r, (a, b) in enumerate(merges)}
        self._merged = {(ids[a], ids[b]): ids[a + b] for a, b in merges}
        self._splitters: dict[frozenset[str], regex.Pattern | None] = {
            frozenset(): None, frozenset(self.special_tokens): special_splitter(self.special_tokens)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._fast = None
        self._fast_ok: bool | None = None
        self.reference_fallbacks = 0  # texts encode_fast handed to the reference encoder

    def __getstate__(self) -> dict:
        """Pickle (e.g. to Ray workers) without the cache or the tiktoken object."""
        state = self.__dict__.copy()
        state.update(_cache={}, _fast=None)
        return state

    # -- construction
    @classmethod
    def from_files(cls, vocab_path: str | os.PathLike, merges_path: str | os.PathLike,
                   special_tokens: list[str] | None = None) -> "Tokenizer":
        """Load a GPT-2 style `vocab.json` (token -> id) and `merges.txt` (one `a b` per line).

        Tokens are written with GPT-2's byte-to-unicode characters; a special token may also
        appear verbatim in vocab.json."""
        specials = set(special_tokens or [])
        raw_vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        vocab = {int(i): token.encode("utf-8") if token in specials else _from_unicode(token, str(vocab_path))
                 for token, i in raw_vocab.items()}
        merges = []
        for number, line in enumerate(Path(merges_path).read_text(encoding="utf-8").splitlines(), 1):
            if not line or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_path}:{number}: expected two tokens separated by one space, got {line!r}")
            where = f"{merges_path}:{number}"
            merges.append((_from_unicode(parts[0], where), _from_unicode(parts[1], where)))
        return cls(vocab, merges, special_tokens)

    def save(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """Write `vocab.json` and `merges.txt` in the GPT-2 format; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
        vocab_path.write_text(json.dumps({_to_unicode(t): i for i, t in sorted(self.vocab.items())},
                                         ensure_ascii=False, indent=0), encoding="utf-8")
        merges_path.write_text("#version: 0.2\n" + "".join(f"{_to_unicode(a)} {_to_unicode(b)}\n"
                                                          for a, b in self.merges), encoding="utf-8")
        return vocab_path, merges_path

    # -- reference encoder
    def _bpe(self, data: bytes) -> tuple[int, ...]:
        """Merge the adjacent pair with the lowest merge rank until no pair is a merge."""
        ids = list(data) if self._bytes_are_ids else [self._byte_ids[b] for b in data]
        rank = self._rank
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda pair: rank.get(pair, len(rank)))
            if best not in rank:
                break
            merged, i, new_id = [], 0, self._merged[best]
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        return tuple(ids)

    def _encode_pretoken(self, piece: str) -> tuple[int, ...]:
        cached = self._cache.get(piece)
        if cached is None:
            cached = self._bpe(piece.encode("utf-8", "surrogatepass"))
            if len(self._cache) < 1_000_000:
                self._cache[piece] = cached
        return cached

    def _allowed_splitter(self, allowed_special: AllowedSpecial) -> regex.Pattern | None:
        """The regex that splits out the allowed special tokens (None: none allowed)."""
        if allowed_special == "all":
            allowed = frozenset(self.special_tokens)
        elif isinstance(allowed_special, str):
            raise ValueError(f"allowed_special={allowed_special!r}: give 'all' or a set of special-token strings, "
                             f"e.g. {{{allowed_special!r}}}")
        else:
            allowed = frozenset(allowed_special)
        splitter = self._splitters.get(allowed, False)
        if splitter is False:
            unknown = sorted(allowed - self.special_ids.keys())
            if unknown:
                raise ValueError(f"allowed_special: {unknown} are not special tokens of this tokenizer "
                                 f"(it has {self.special_tokens})")
            splitter = self._splitters[allowed] = special_splitter(sorted(allowed))
        return splitter

    @staticmethod
    def _segments(text: str, splitter: regex.Pattern | None) -> Iterator[tuple[bool, str]]:
        """(is_special, segment) pieces of `text`, the splitter's specials matched longest first."""
        if splitter is None:
            yield False, text
            return
        for i, part in enumerate(splitter.split(text)):
            if part:
                yield i % 2 == 1, part

    def encode(self, text: str, *, allowed_special: AllowedSpecial = ()) -> list[int]:
        """Reference encoder: the definition of correct output.

        Special-token strings in `text` are ordinary text (bytes and merges) unless allowed:
        `allowed_special="all"` or a set of this tokenizer's special tokens turns those into their ids."""
        return self._encode_reference(text, self._allowed_splitter(allowed_special))

    def _encode_reference(self, text: str, splitter: regex.Pattern | None) -> list[int]:
        out: list[int] = []
        for is_special, part in self._segments(text, splitter):
            if is_special:
                out.append(self.special_ids[part])
            else:
                for match in _PRETOKEN.finditer(part):
                    out.extend(self._encode_pretoken(match.group()))
        return out

    # -- fast encoder
    def fast_path_available(self) -> bool:
        """Whether tiktoken's BPE gives our ids (checked once, about 10 µs per merge).

        tiktoken merges the adjacent parts whose concatenation has the lowest rank, and takes a
        whole pre-token that is in its ranks as one token. With ranks = our ids that equals
        merging by merge rank when (1) every merge makes a distinct byte string, (2) ids grow with
        merge order, and (3) each merged token's own bytes encode (reference) to that token. All
        three hold for vocabularies trained by `train_bpe`; files from elsewhere may break them.
        """
        if self._fast_ok is None:
            merged = [self._ids[a + b] for a, b in self.merges]
            self._fast_ok = (len(set(merged)) == len(merged)
                             and all(x < y for x, y in zip(merged, merged[1:]))
                             and all(self._bpe(self.vocab[i]) == (i,) for i in merged))
        return self._fast_ok

    def tiktoken_encoding(self):
        """tiktoken.Encoding built from our ranks (specials excluded: Sieve splits out the allowed ones).

        Alone it equals `encode` only when `fast_path_available()` and the text has no character
        flagged by `unicode_disagreements()`; `encode_fast` checks both."""
        if self._fast is None:
            import tiktoken

            # Only the 256 bytes and the merges: other vocab entries are never produced by BPE.
            ranks = {bytes([b]): self._ids[bytes([b])] for b in range(256)}
            ranks.update({a + b: self._ids[a + b] for a, b in self.merges})
            self._fast = tiktoken.Encoding(name=f"sieve-{len(self.vocab)}", pat_str=GPT2_PATTERN,
                                           mergeable_ranks=ranks, special_tokens={})
        return self._fast

    def _needs_reference(self, text: str) -> bool:
        if not self.fast_path_available():
            return True
        if text.isascii():
            return False
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        return bool(unicode_disagreements()[codes].any())

    def encode_fast(self, text: str, *, allowed_special: AllowedSpecial = ()) -> list[int]:
        """Same ids as `encode` (same `allowed_special`), through tiktoken's Rust BPE when that is
        provably the same."""
        splitter = self._allowed_splitter(allowed_special)
        if self._needs_reference(text):
            self.reference_fallbacks += 1
            return self._encode_reference(text, splitter)
        encoding = self.tiktoken_encoding()
        if splitter is None:
            return encoding.encode_ordinary(text)
        out: list[int] = []
        for is_special, part in self._segments(text, splitter):
            if is_special:
                out.append(self.special_ids[part])
            else:
                out.extend(encoding.encode_ordinary(part))
        return out

    def encode_iterable(self, iterable: Iterable[str], buffer_chars: int = 1 << 20, *,
                        allowed_special: AllowedSpecial = ()) -> Iterator[int]:
        """Token ids of the concatenation of `iterable` (e.g. a file handle), in constant memory.

        Whenever the buffer is full, the text up to its last safe cut (a non-space followed by
        whitespace, outside allowed special tokens) is encoded and dropped; the ids equal `encode`
        of the whole text with the same `allowed_special`.
        """
        splitter = self._allowed_splitter(allowed_special)
        buf = ""
        for chunk in iterable:
            buf += chunk
            if len(buf) < buffer_chars:
                continue
            cut = self._last_safe_cut(buf, splitter)
            if cut:
                yield from self.encode_fast(buf[:cut], allowed_special=allowed_special)
                buf = buf[cut:]
        if buf:
            yield from self.encode_fast(buf, allowed_special=allowed_special)

    def _last_safe_cut(self, buf: str, splitter: regex.Pattern | None) -> int:
        """The last safe cut in the buffer's final 64 K characters, outside the splitter's special
        tokens (0: none). Ordinary text needs no such check: a cut after a non-space before a
        whitespace pre-tokenizes both sides as the whole."""
        start = max(0, len(buf) - (1 << 16))
        longest = max(map(len, self.special_tokens), default=0)
        for match in reversed(list(_SAFE_CUT.finditer(buf, start))):
            cut = match.end()
            if splitter is None or not any(
                    m.start() < cut < m.end() for m in splitter.finditer(buf, max(0, cut - longest), cut + longest)):
                return cut
        return 0

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids (a special id as its string); invalid UTF-8 becomes U+FFFD."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")
