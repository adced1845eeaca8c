"""Deduplication primitives: text normalization, MinHash signatures, LSH buckets, clustering,
and the file-level APIs `exact_line_dedup` and `minhash_dedup`.

MinHash follows datasketch's default "affine32" scheme exactly: each shingle gets a 32-bit hash,
pre-mixed by the MurmurHash3 finalizer, then permuted by h -> a*h + b (mod 2^32) with (a, b)
drawn from `np.random.RandomState(seed)` as datasketch draws them. So a stored signature is a
datasketch signature: `datasketch.MinHash(num_perm, seed=seed, hashfunc=shingle_hash32)` fed the
`shingles(text)` gives the same hash values, and `LeanMinHash(seed=seed, hashvalues=sig)` works.
What makes it fast is that shingles are never Python objects: word hashes come from numpy over
the text's code points, n-gram hashes are a few vector operations, and
the permutations are one (shingles x num_perm) uint32 multiply-add.

Clustering refuses chains: LSH candidates are checked (signature Jaccard, or exact shingle
Jaccard when the text is at hand) before they become edges, and inside each connected component a
member joins a cluster only if it is similar to that cluster's survivor itself; so A~B~C with A
and C far apart never puts A and C in one cluster.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import xxhash

from filters.base import DocFilter, Document, FilterParams

_SPACES = re.compile(r"\s+")
_NGRAM_BASE = np.uint64(0x9E3779B97F4A7C15)
_WORD_BASE = 0xD6E8FEB86659FD93
_U32 = np.uint64(0xFFFFFFFF)
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_TABLE_SIZE = 0x30000  # code points past it (rare scripts) count as word characters
_DROP, _WORD, _SPACE = 0, 1, 2


# ---------------------------------------------------------------- normalization and shingles

@lru_cache(maxsize=1)
def _char_classes() -> np.ndarray:
    """Per code point: dropped (punctuation, symbols, combining marks, `_`), word, or space."""
    classes = np.zeros(_TABLE_SIZE + 1, dtype=np.uint8)
    for code in range(_TABLE_SIZE):
        ch = chr(code)
        classes[code] = _WORD if ch.isalnum() else _SPACE if ch.isspace() else _DROP
    classes[_TABLE_SIZE] = _WORD
    return classes


@lru_cache(maxsize=1)
def _position_powers() -> np.ndarray:
    powers = np.full(4096, _WORD_BASE, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers)


def normalize_text(text: str) -> str:
    """Lowercase, NFD with accents stripped, punctuation removed, whitespace collapsed."""
    classes = _char_classes()
    kept = "".join(ch for ch in unicodedata.normalize("NFD", text.lower())
                   if classes[min(ord(ch), _TABLE_SIZE)] != _DROP)
    return " ".join(kept.split())


def normalized_word_hashes(text: str) -> np.ndarray:
    """uint64 hash of each word of `normalize_text(text)`, computed with numpy on code points
    (no Python string per word). Equal words get equal hashes."""
    codes = np.frombuffer(unicodedata.normalize("NFD", text.lower()).encode("utf-32-le", "surrogatepass"),
                          dtype=np.uint32)
    classes = _char_classes().take(codes, mode="clip")
    word = classes == _WORD
    codes = codes[word | (classes == _SPACE)]
    is_word = word[word | (classes == _SPACE)]
    if not is_word.any():
        return np.zeros(0, dtype=np.uint64)
    starts = np.flatnonzero(is_word & ~np.concatenate(([False], is_word[:-1])))
    word_chars = np.flatnonzero(is_word)
    # Index of each word character's word, and its position inside that word.
    word_of = np.cumsum(np.isin(word_chars, starts)) - 1
    position = word_chars - starts[word_of]
    powers = _position_powers()
    weights = (codes[word_chars].astype(np.uint64) + np.uint64(1)) * powers[np.minimum(position, len(powers) - 1)]
    first = np.flatnonzero(np.concatenate(([True], word_of[1:] != word_of[:-1])))
    hashes = np.add.reduceat(weights, first)
    hashes ^= hashes >> np.uint64(31)
    hashes *= np.uint64(0x94D049BB133111EB)
    hashes ^= hashes >> np.uint64(29)
    return hashes


def text_hash(text: str) -> int:
    """64-bit hash of the normalized text: equal after normalization means exact duplicate."""
    return xxhash.xxh3_64_intdigest(normalized_word_hashes(text).tobytes())


def _ngram_hashes(word_hashes: np.ndarray, ngram: int) -> np.ndarray:
    """32-bit hashes of the word n-grams (a text shorter than n words is one shingle)."""
    n = min(ngram, len(word_hashes))
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    count = len(word_hashes) - n + 1
    acc = word_hashes[:count].copy()
    for j in range(1, n):
        acc *= _NGRAM_BASE
        acc += word_hashes[j: j + count]
    acc ^= acc >> np.uint64(29)
    acc *= np.uint64(0xBF58476D1CE4E5B9)
    acc ^= acc >> np.uint64(32)
    return (acc & _U32).astype(np.uint32)


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Distinct 32-bit hashes of the normalized text's word n-grams."""
    return np.unique(_ngram_hashes(normalized_word_hashes(text), ngram))


def shingles(text: str, ngram: int = 5) -> list[str]:
    """The word n-grams themselves (for datasketch's update loop and for exact Jaccard)."""
    words = normalize_text(text).split()
    n = min(ngram, len(words))
    return [" ".join(words[i: i + n]) for i in range(len(words) - n + 1)] if n else []


def shingle_hash32(shingle: bytes | str) -> int:
    """The hash `shingle_hashes` gives one shingle: datasketch's `hashfunc` for compatibility."""
    if isinstance(shingle, bytes):
        shingle = shingle.decode("utf-8")
    hashes = normalized_word_hashes(shingle)
    return int(_ngram_hashes(hashes, len(hashes))[0])


# ---------------------------------------------------------------- MinHash

class MinHasher:
    """datasketch-compatible affine32 MinHash over numpy shingle hashes."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 5) -> None:
        self.num_perm, self.seed, self.ngram = num_perm, seed, ngram
        gen = np.random.RandomState(seed)  # the draws datasketch makes for scheme="affine32"
        self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)

    def signature_of_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash of a set of 32-bit shingle hashes (all-max for the empty set, as datasketch)."""
        if len(hashes) == 0:
            return np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        s1, m1, s2, m2, s3 = _FMIX32
        hv = hashes.astype(np.uint32)
        hv = hv ^ (hv >> s1)
        hv *= m1
        hv ^= hv >> s2
        hv *= m2
        hv ^= hv >> s3
        with np.errstate(over="ignore"):
            permuted = np.multiply.outer(hv, self.a)
            permuted += self.b
        return permuted.min(axis=0)

    def signature(self, text: str) -> np.ndarray:
        return self.signature_of_hashes(shingle_hashes(text, self.ngram))


def signature_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity estimated from two signatures of the same hasher."""
    return float(np.count_nonzero(a == b)) / len(a)


def exact_jaccard(a: set | np.ndarray, b: set | np.ndarray) -> float:
    a, b = set(a.tolist() if isinstance(a, np.ndarray) else a), set(b.tolist() if isinstance(b, np.ndarray) else b)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def lsh_params(threshold: float, num_perm: int, target_recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows per band): the most rows per band (fewest false candidates) whose S-curve still
    makes a pair at exactly `threshold` a candidate with probability >= `target_recall`.

    Candidates are verified afterwards, so false candidates cost a check while missed pairs are
    lost: this places the curve below the threshold. (datasketch's optimiser, which weighs both
    errors alike, gives 9 x 13 at 0.8 / 128, which finds a pair at Jaccard 0.8 only 40% of the time.)
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= target_recall:
            return bands, rows
    return num_perm, 1


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64 bucket keys: a hash of each band's rows, salted by band index."""
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    acc = np.zeros(sig.shape[:2], dtype=np.uint64)
    for r in range(rows):
        acc *= _NGRAM_BASE
        acc += sig[:, :, r]
    acc += np.arange(bands, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    acc ^= acc >> np.uint64(31)
    acc *= np.uint64(0x94D049BB133111EB)
    acc ^= acc >> np.uint64(29)
    return acc


def bucket_pairs(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Candidate pairs from colliding keys: each bucket's members paired with its first member
    (a star: k-1 pairs per bucket of k, not k^2). Returns an (m, 2) array of ids, deduplicated."""
    if len(keys) < 2:
        return np.zeros((0, 2), dtype=ids.dtype)
    order = np.lexsort((ids, keys))
    keys, ids = keys[order], ids[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    first_of = np.repeat(ids[starts], np.diff(np.append(starts, len(keys))))
    mask = first_of != ids
    pairs = np.stack([first_of[mask], ids[mask]], axis=1)
    if len(pairs) == 0:
        return pairs
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def cluster(n: int, edges: np.ndarray, rank: np.ndarray,
            similar: Callable[[int, int], bool]) -> np.ndarray:
    """Cluster id per item (the id of its survivor) from verified edges, refusing chains.

    Connected components of `edges` are split greedily: the best-ranked remaining member
    (lowest `rank`) becomes a survivor and takes every remaining member similar to it; repeat.
    Items in no edge are their own cluster.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    survivor = np.arange(n)
    if len(edges) == 0:
        return survivor
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    multi = np.flatnonzero(sizes[labels] > 1)
    by_component: dict[int, list[int]] = {}
    for item in multi[np.argsort(rank[multi], kind="stable")]:
        by_component.setdefault(int(labels[item]), []).append(int(item))
    for members in by_component.values():
        remaining = members
        while remaining:
            center, rest = remaining[0], remaining[1:]
            remaining = []
            for item in rest:
                if similar(center, item):
                    survivor[item] = center
                else:
                    remaining.append(item)
    return survivor


# ---------------------------------------------------------------- the annotate-stage filter

class MinHashParams(FilterParams):
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1


class MinHashFilter(DocFilter):
    """Stores the MinHash signature and normalized-text hash; dedup itself is a global stage."""

    name = "minhash"
    Params = MinHashParams

    def __init__(self, params: MinHashParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._hasher: MinHasher | None = None

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field("minhash", pa.list_(pa.uint32(), self.params.num_perm)),
                pa.field("text_hash", pa.uint64())]

    def annotate(self, doc: Document) -> None:
        if self._hasher is None:
            self._hasher = MinHasher(self.params.num_perm, self.params.seed, self.params.ngram)
        words = normalized_word_hashes(doc.text)
        # Repeated shingles do not change a minimum: no need to deduplicate them first.
        doc.signals["minhash"] = self._hasher.signature_of_hashes(_ngram_hashes(words, self.params.ngram))
        doc.signals["text_hash"] = xxhash.xxh3_64_intdigest(words.tobytes())

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        return None


# ---------------------------------------------------------------- file-level APIs

def _read_text(path: str | os.PathLike) -> str:
    return Path(path).read_bytes().decode("utf-8", errors="surrogateescape")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))


def exact_line_dedup(input_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike) -> dict[str, int]:
    """Keep only the lines that occur exactly once in the whole corpus.

    Two passes: count every line (by 64-bit hash, so memory is 8 bytes per distinct line) across
    all files, then write each file under the same name to `output_dir` with its unique lines.
    """
    counts: Counter[int] = Counter()
    for path in input_paths:
        counts.update(xxhash.xxh3_64_intdigest(line.encode("utf-8", "surrogateescape"))
                      for line in _read_text(path).splitlines(keepends=True))
    out = Path(output_dir)
    lines_in = lines_out = 0
    for path in input_paths:
        lines = _read_text(path).splitlines(keepends=True)
        kept = [line for line in lines
                if counts[xxhash.xxh3_64_intdigest(line.encode("utf-8", "surrogateescape"))] == 1]
        lines_in += len(lines)
        lines_out += len(kept)
        _write_text(out / Path(path).name, "".join(kept))
    return {"files": len(input_paths), "lines_in": lines_in, "lines_out": lines_out}


def minhash_dedup(input_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
                  num_hashes: int, num_bands: int, ngrams: int, jaccard_threshold: float,
                  seed: int = 1) -> dict[str, Any]:
    """Near-duplicate removal with one document per file; survivors are written under the same names.

    LSH over `num_bands` bands of `num_hashes // num_bands` rows proposes candidates; a pair
    becomes an edge only if its exact shingle Jaccard is >= `jaccard_threshold`; clusters refuse
    chains (see `cluster`); the first file of each cluster (in input order) survives.
    """
    if num_bands < 1 or num_hashes % num_bands:
        raise ValueError(f"num_hashes ({num_hashes}) must be a multiple of num_bands ({num_bands})")
    hasher = MinHasher(num_hashes, seed, ngrams)
    texts = [_read_text(p) for p in input_paths]
    shingle_sets = [shingle_hashes(t, ngrams) for t in texts]
    signatures = np.stack([hasher.signature_of_hashes(s) for s in shingle_sets]) if texts else \
        np.zeros((0, num_hashes), dtype=np.uint32)
    keys = band_keys(signatures, num_bands, num_hashes // num_bands)
    n = len(texts)
    ids = np.repeat(np.arange(n), num_bands)
    candidates = bucket_pairs(keys.reshape(-1), ids)
    sets = [set(s.tolist()) for s in shingle_sets]

    def similar(i: int, j: int) -> bool:
        return exact_jaccard(sets[i], sets[j]) >= jaccard_threshold

    edges = np.array([p for p in candidates if similar(int(p[0]), int(p[1]))], dtype=np.int64).reshape(-1, 2)
    survivor = cluster(n, edges, np.arange(n), similar)
    out = Path(output_dir)
    for i, path in enumerate(input_paths):
        if survivor[i] == i:
            _write_text(out / Path(path).name, texts[i])
    sizes = Counter(Counter(survivor.tolist()).values())
    return {"files": n, "kept": int(np.sum(survivor == np.arange(n))), "removed": int(np.sum(survivor != np.arange(n))),
            "candidate_pairs": int(len(candidates)), "verified_pairs": int(len(edges)),
            "cluster_sizes": {int(k): int(v) for k, v in sorted(sizes.items())}}


def iter_dedup_keys(values: Iterable[Any]) -> np.ndarray:
    """uint64 hashes of arbitrary values (URLs for URL dedup)."""
    return np.fromiter((xxhash.xxh3_64_intdigest(str(v).encode("utf-8", "surrogatepass")) for v in values),
                       dtype=np.uint64)
