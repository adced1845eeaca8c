"""Sieve's byte-level BPE tokenizer (the GPT-2 family's algorithm), training and encoding side by side.

Training: text is split on special tokens (no merge crosses them), pre-tokenized with the GPT-2
regex, and pre-token frequencies are counted in parallel over chunks cut at special-token
boundaries (bounded memory: the counts, never the corpus). Merges are learned by frequency, ties
broken by the lexicographically greater pair of byte strings; after each merge only the words
that contain the merged pair are updated (pair -> words index, lazy max-heap).

Encoding: `Tokenizer.encode` is the reference (merge the lowest-ranked adjacent pair until none
is left, per pre-token, cached). `Tokenizer.encode_fast` runs the same merges in tiktoken's Rust
core, built from OUR ranks (no download); it is used only when it is provably equivalent (every
merged byte string is unique), otherwise the reference runs. Special tokens are split out by
Sieve in both paths, longest match first.
"""
from __future__ import annotations

import heapq
import json
import multiprocessing as mp
import os
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRETOKEN = regex.compile(GPT2_PATTERN)
_SURROGATE = regex.compile(r"[\ud800-\udfff]")
_SAFE_CUT = regex.compile(r"[^\s]\n(?=\S)")  # a pre-token boundary whatever text follows
CHUNK_BYTES = 16 << 20


# ---------------------------------------------------------------- pre-tokenization

def _special_splitter(special_tokens: list[str]) -> regex.Pattern | None:
    """Regex that splits on special tokens, longest first (so overlapping specials pick the longest)."""
    if not special_tokens:
        return None
    ordered = sorted(special_tokens, key=len, reverse=True)
    return regex.compile("(" + "|".join(regex.escape(s) for s in ordered) + ")")


def count_pretokens(text: str, special_tokens: list[str]) -> Counter[bytes]:
    """Pre-token (as UTF-8 bytes) frequencies of `text`, specials removed."""
    counts: Counter[str] = Counter()
    splitter = _special_splitter(special_tokens)
    specials = set(special_tokens)
    for part in (splitter.split(text) if splitter else [text]):
        if part and part not in specials:
            counts.update(_PRETOKEN.findall(part))
    return Counter({k.encode("utf-8", "surrogatepass"): v for k, v in counts.items()})


def chunk_boundaries(fh: BinaryIO, size: int, chunk_bytes: int, split_token: bytes) -> list[int]:
    """Byte offsets cutting a file into ~chunk_bytes pieces, each cut at a `split_token` occurrence
    (or at a newline when no special token is given), so no pre-token or special spans two chunks."""
    bounds = [0]
    marker = split_token or b"\n"
    position = chunk_bytes
    while position < size:
        fh.seek(position)
        window = b""
        while True:
            block = fh.read(1 << 16)
            if not block:
                bounds.append(size)
                return sorted(set(bounds))
            window += block
            found = window.find(marker)
            if found != -1:
                cut = position + found + (len(marker) if not split_token else 0)
                if cut > bounds[-1]:
                    bounds.append(cut)
                break
        position = max(bounds[-1] + chunk_bytes, position + chunk_bytes)
    bounds.append(size)
    return sorted(set(bounds))


def _count_chunk(args: tuple[str, int, int, list[str]]) -> Counter[bytes]:
    path, start, end, special_tokens = args
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    return count_pretokens(data.decode("utf-8", errors="replace"), special_tokens)


def count_file_pretokens(path: str | os.PathLike, special_tokens: list[str], num_workers: int | None = None,
                         chunk_bytes: int = CHUNK_BYTES) -> Counter[bytes]:
    """Pre-token counts of a text file, chunks counted in parallel and merged as they finish."""
    path = str(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        bounds = chunk_boundaries(fh, size, chunk_bytes, special_tokens[0].encode() if special_tokens else b"")
    jobs = [(path, a, b, special_tokens) for a, b in zip(bounds, bounds[1:])]
    workers = min(num_workers or os.cpu_count() or 1, len(jobs))
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

class _Ranked:
    """Heap entry: the pair with the higher count, then the lexicographically greater bytes, pops first."""

    __slots__ = ("count", "key", "pair")

    def __init__(self, count: int, key: tuple[bytes, bytes], pair: tuple[int, int]) -> None:
        self.count, self.key, self.pair = count, key, pair

    def __lt__(self, other: "_Ranked") -> bool:
        return (self.count, self.key) > (other.count, other.key)


def _merge_pair(word: list[int], a: int, b: int, new_id: int) -> list[int] | None:
    """`word` with every (a, b) replaced by new_id, left to right; None if (a, b) does not occur."""
    merged, i, n, found = [], 0, len(word), False
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            merged.append(new_id)
            i += 2
            found = True
        else:
            merged.append(word[i])
            i += 1
    return merged if found else None


def train_bpe_from_counts(counts: Counter[bytes] | dict[bytes, int], vocab_size: int,
                          special_tokens: list[str]) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """BPE merges from pre-token counts (see `train_bpe`)."""
    vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    num_merges = max(0, vocab_size - len(vocab))
    words = [list(word) for word in counts]
    freqs = list(counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    pair_words: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            pair_words[pair].add(w)
    heap = [_Ranked(c, (vocab[p[0]], vocab[p[1]]), p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < num_merges and heap:
        entry = heapq.heappop(heap)
        if pair_counts.get(entry.pair, 0) != entry.count or entry.count <= 0:
            continue  # stale entry: the count changed after it was pushed
        a, b = entry.pair
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
        changed: set[tuple[int, int]] = set()
        for w in pair_words.pop(entry.pair):
            word = words[w]
            merged = _merge_pair(word, a, b, new_id)
            if merged is None:
                continue  # stale index entry: an earlier merge already consumed this pair here
            words[w] = merged
            # Only the pairs around the merge sites change; count their net change once per word.
            delta: dict[tuple[int, int], int] = defaultdict(int)
            for pair in zip(word, word[1:]):
                delta[pair] -= 1
            for pair in zip(merged, merged[1:]):
                delta[pair] += 1
            freq = freqs[w]
            for pair, d in delta.items():
                if d:
                    pair_counts[pair] += d * freq
                    changed.add(pair)
                    if d > 0:
                        pair_words[pair].add(w)
        pair_counts.pop(entry.pair, None)
        for pair in changed:
            count = pair_counts.get(pair, 0)
            if count > 0:
                heapq.heappush(heap, _Ranked(count, (vocab[pair[0]], vocab[pair[1]]), pair))
            else:
                pair_counts.pop(pair, None)
    return vocab, merges


def train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str],
              num_workers: int | None = None) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE on a UTF-8 text file.

    Returns the vocab (id -> bytes: the 256 bytes, then the special tokens, then one token per
    merge) and the merges in order of creation.
    """
    counts = count_file_pretokens(input_path, special_tokens, num_workers)
    return train_bpe_from_counts(counts, vocab_size, special_tokens)


def train_bpe_from_texts(texts: Iterable[str], vocab_size: int, special_tokens: list[str]
                         ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train from an iterable of documents (the pipeline's kept text), counting as it streams."""
    counts: Counter[bytes] = Counter()
    for text in texts:
        counts.update(count_pretokens(text, special_tokens))
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


def _to_unicode(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def _from_unicode(text: str) -> bytes:
    inverse = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(inverse[c] for c in text)


# ---------------------------------------------------------------- encoding

class Tokenizer:
    """Encode/decode with a byte-level BPE vocab and its merges (plus optional special tokens)."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: list[str] | None = None) -> None:
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(special_tokens or [])
        ids = {token: i for i, token in self.vocab.items()}
        for special in self.special_tokens:
            encoded = special.encode("utf-8")
            if encoded not in ids:
                ids[encoded] = len(self.vocab)
                self.vocab[len(self.vocab)] = encoded
        self.special_ids = {s: ids[s.encode("utf-8")] for s in self.special_tokens}
        self._ids = ids
        self._rank = {(ids[a], ids[b]): r for r, (a, b) in enumerate(merges)}
        self._merged = {(ids[a], ids[b]): ids[a + b] for a, b in merges}
        self._splitter = _special_splitter(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._fast = None
        merged = [a + b for a, b in self.merges]
        self._fast_ok = len(set(merged)) == len(merged)

    # -- construction
    @classmethod
    def from_files(cls, vocab_path: str | os.PathLike, merges_path: str | os.PathLike,
                   special_tokens: list[str] | None = None) -> "Tokenizer":
        """Load a GPT-2 style `vocab.json` (token -> id) and `merges.txt` (one `a b` per line)."""
        raw_vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        vocab = {int(i): _from_unicode(token) for token, i in raw_vocab.items()}
        merges = []
        for line in Path(merges_path).read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges.append((_from_unicode(a), _from_unicode(b)))
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
    def _encode_pretoken(self, piece: str) -> tuple[int, ...]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = list(piece.encode("utf-8", "surrogatepass"))
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda p: self._rank.get(p, float("inf")))
            if best not in self._rank:
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
        result = tuple(ids)
        if len(self._cache) < 1_000_000:
            self._cache[piece] = result
        return result

    def _segments(self, text: str) -> Iterator[tuple[bool, str]]:
        """(is_special, segment) pieces of `text`, specials matched longest first."""
        if self._splitter is None:
            yield False, text
            return
        for i, part in enumerate(self._splitter.split(text)):
            if part:
                yield i % 2 == 1, part

    def encode(self, text: str) -> list[int]:
        """Reference encoder: the definition of correct output."""
        out: list[int] = []
        for is_special, part in self._segments(text):
            if is_special:
                out.append(self.special_ids[part])
            else:
                for match in _PRETOKEN.finditer(part):
                    out.extend(self._encode_pretoken(match.group()))
        return out

    # -- fast encoder
    def fast_path_available(self) -> bool:
        """tiktoken merges by the rank of the merged bytes; that equals our merge order only when
        every merge yields a distinct byte string (and the text has no lone surrogates)."""
        return self._fast_ok

    def _tiktoken(self):
        if self._fast is None:
            import tiktoken

            special = {self.vocab[i] for i in self.special_ids.values()}
            ranks = {token: i for i, token in self.vocab.items() if token not in special}
            self._fast = tiktoken.Encoding(name=f"sieve-{len(self.vocab)}", pat_str=GPT2_PATTERN,
                                           mergeable_ranks=ranks, special_tokens={})
        return self._fast

    def encode_fast(self, text: str) -> list[int]:
        """Same ids as `encode`, through tiktoken's Rust BPE when that is equivalent."""
        if not self._fast_ok or _SURROGATE.search(text):  # tiktoken would replace lone surrogates
            return self.encode(text)
        encoding = self._tiktoken()
        out: list[int] = []
        for is_special, part in self._segments(text):
            if is_special:
                out.append(self.special_ids[part])
            else:
                out.extend(encoding.encode_ordinary(part))
        return out

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode_fast(t) for t in texts]

    def encode_iterable(self, iterable: Iterable[str], buffer_chars: int = 1 << 20) -> Iterator[int]:
        """Token ids of the concatenation of `iterable` (e.g. a file handle), in constant memory.

        Text is encoded up to the last safe cut (a newline between two non-space characters, not
        inside a special token) each time the buffer is full, so the ids equal `encode` of the
        whole text.
        """
        buf = ""
        longest_special = max(map(len, self.special_tokens), default=0)
        for chunk in iterable:
            buf += chunk
            if len(buf) < buffer_chars:
                continue
            cut = self._safe_cut(buf, longest_special)
            if cut:
                yield from self.encode_fast(buf[:cut])
                buf = buf[cut:]
        if buf:
            yield from self.encode_fast(buf)

    def _safe_cut(self, buf: str, longest_special: int) -> int:
        for match in reversed(list(_SAFE_CUT.finditer(buf, max(0, len(buf) - (1 << 16))))):
            cut = match.end()
            if self._splitter is None or not any(
                    m.start() < cut < m.end()
                    for m in self._splitter.finditer(buf, max(0, cut - longest_special), cut + longest_special)):
                return cut
        return 0

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; invalid UTF-8 becomes U+FFFD."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")
