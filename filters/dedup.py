"""Deduplication primitives: text normalization, MinHash signatures, LSH buckets, chain-safe
clustering, line keys, and the file-level APIs `exact_line_dedup` and `minhash_dedup`.

Signatures are datasketch signatures. Each shingle gets a 32-bit hash (`shingle_hash32`), then
num_perm permutations drawn from `np.random.RandomState(seed)` exactly as datasketch draws them:
scheme "affine32" (datasketch >= 2.0 default: murmur3 finalizer, then a*h + b mod 2^32) or
"legacy" (datasketch < 2.0: (a*h + b) mod (2^61 - 1), truncated to 32 bits). So
`datasketch.MinHash(num_perm, seed=seed, hashfunc=shingle_hash32, scheme=scheme)` fed
`shingles(text)` holds the same hash values, and `LeanMinHash(seed=seed, hashvalues=sig,
scheme=scheme)` built from a stored signature compares with it.

Speed comes from never making a Python object per word or shingle: one compiled pass over the
code points normalizes the text and hashes its words, n-grams are a few vector operations, and
one compiled loop takes the minimum of every permutation over the shingles.

Clustering refuses chains: candidate pairs are checked before they become edges, and inside a
connected component a document is removed only if it is itself similar to the survivor that
removes it; so with A~B and B~C but not A~C, A and C are never merged.
"""
from __future__ import annotations

import os
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import pyarrow as pa
import xxhash
from numba import njit
from pydantic import Field

from filters.base import DocFilter, Document, FilterParams
from filters.hashing import GOLDEN64, MIX1, WORD_BASE, mix64_short
from filters.text import code_points

Scheme = Literal["affine32", "legacy"]
_U32 = np.uint64(0xFFFFFFFF)
_MERSENNE = np.uint64((1 << 61) - 1)
_TABLE_SIZE = 0x30000  # code points past it (rare scripts) count as word characters
_DROP, _WORD, _SPACE = 0, 1, 2
_SPACE_CODE = np.uint32(0x20)
_MANY = np.uint32(0xFFFFFFFF)  # in `_fold_table`'s single: the code point folds to several (or none)
_MAX_FOLD = 4  # code points one code point folds to, at most (U+1F82 and other Greek letters with three marks)


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
    powers = np.full(4096, WORD_BASE, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers)


@lru_cache(maxsize=1)
def _fold_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(single, offsets, codes): code point c < _TABLE_SIZE folds to the NFD of its lower case:
    single[c] when that is one code point, else (single[c] = _MANY) to
    codes[offsets[c]:offsets[c + 1]]. Built once per process (~70 ms).

    Folding code point by code point equals NFD(text.lower()) once the dropped characters are
    gone: lower() maps each code point alone except a capital sigma (see `_normalized`), and
    NFD's reordering moves only combining marks, which are all dropped. Code points past the
    table fold to themselves.
    """
    # NUL-separated, so that no decomposition or reordering crosses from one code point to the next
    chars = "\0".join(map(chr, range(1, _TABLE_SIZE)))
    folded = ["\0"] + unicodedata.normalize("NFD", chars.lower()).split("\0")
    lengths = np.fromiter(map(len, folded), dtype=np.int64, count=_TABLE_SIZE)
    offsets = np.zeros(_TABLE_SIZE + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = code_points("".join(folded))
    if lengths.max() > _MAX_FOLD:
        raise RuntimeError(f"this Python's Unicode data folds a code point to {lengths.max()} (> {_MAX_FOLD})")
    single = np.full(_TABLE_SIZE, _MANY, dtype=np.uint32)
    single[lengths == 1] = codes[offsets[:-1][lengths == 1]]
    return single, offsets, codes


@njit(cache=True, nogil=True)
def _fold(points: np.ndarray, single: np.ndarray, offsets: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The code points folded through `_fold_table` (a temporary: the caller reads it once)."""
    # Room for the longest fold of every code point, without checks in the loop: np.empty only
    # reserves the pages, and just the ones written are ever touched.
    out = np.empty(_MAX_FOLD * len(points), np.uint32)
    size = 0
    for point in points:
        code = single[point] if point < len(single) else point
        if code != _MANY:
            out[size] = code
            size += 1
            continue
        for k in range(offsets[point], offsets[point + 1]):
            out[size] = codes[k]
            size += 1
    return out[:size]


@njit(cache=True, nogil=True)
def _normalize_and_hash(codes: np.ndarray, classes: np.ndarray, powers: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(normalized code points, uint64 hash of each word) in one pass over folded (`_fold`) code
    points: dropped characters vanish, words are joined by one U+0020. A word's hash is
    sum((code point + 1) * P[min(i, len(P) - 1)]) over its characters at positions i, bit-mixed."""
    last_class, last_power = len(classes) - 1, len(powers) - 1
    out = np.empty(len(codes), np.uint32)
    hashes = np.empty(len(codes) // 2 + 1, np.uint64)
    size = words = position = 0
    inside = False
    h = np.uint64(0)
    for code in codes:
        kind = classes[min(code, last_class)]
        if kind == _WORD:
            if not inside:
                if words:
                    out[size] = _SPACE_CODE
                    size += 1
                inside, position, h = True, 0, np.uint64(0)
            out[size] = code
            size += 1
            h += (np.uint64(code) + np.uint64(1)) * powers[min(position, last_power)]
            position += 1
        elif kind == _SPACE and inside:
            hashes[words] = mix64_short(h)
            words += 1
            inside = False
    if inside:
        hashes[words] = mix64_short(h)
        words += 1
    return out[:size].copy(), hashes[:words].copy()


def _normalized(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(code points of the normalized text, word hashes): lowercase, NFD, accents and
    punctuation dropped, every whitespace run between two words one U+0020, none at the ends."""
    if "\u03a3" in text:  # a capital sigma lowers by its context (final sigma): str.lower knows it,
        text = text.lower()  # and the table then folds lower-case code points to their NFD alone
    points = code_points(text)
    return _normalize_and_hash(_fold(points, *_fold_table()), _char_classes(), _position_powers())


def normalize_text(text: str) -> str:
    """Lowercase, NFD with accents stripped, punctuation removed, whitespace collapsed."""
    return _normalized(text)[0].tobytes().decode("utf-32-le", "surrogatepass")


def normalized_word_hashes(text: str) -> np.ndarray:
    """uint64 hash of each word of `normalize_text(text)`; equal words get equal hashes."""
    return _normalized(text)[1]


def _text_hash_of_codes(codes: np.ndarray) -> int:
    return xxhash.xxh3_64_intdigest(codes.tobytes().decode("utf-32-le", "surrogatepass")
                                    .encode("utf-8", "surrogatepass"))


def text_hash(text: str) -> int:
    """xxh3-64 of the UTF-8 normalized text: equal after normalization means exact duplicate."""
    return _text_hash_of_codes(_normalized(text)[0])


@njit(cache=True, nogil=True)
def _ngram_hashes(word_hashes: np.ndarray, ngram: int) -> np.ndarray:
    """32-bit hashes of the word n-grams (a text shorter than n words is one shingle)."""
    n = min(ngram, len(word_hashes))
    out = np.empty(len(word_hashes) - n + 1 if n else 0, np.uint32)
    for i in range(len(out)):
        acc = word_hashes[i]
        for j in range(1, n):
            acc = acc * GOLDEN64 + word_hashes[i + j]
        acc ^= acc >> np.uint64(29)
        acc *= MIX1
        acc ^= acc >> np.uint64(32)
        out[i] = np.uint32(acc & _U32)
    return out


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Sorted distinct 32-bit hashes of the normalized text's word n-grams (its shingle set)."""
    return np.unique(_ngram_hashes(normalized_word_hashes(text), ngram))


def shingles(text: str, ngram: int = 5) -> list[str]:
    """The word n-grams themselves (for datasketch's update loop and other libraries)."""
    words = normalize_text(text).split(" ")
    n = min(ngram, len(words)) if words[0] else 0
    return [" ".join(words[i: i + n]) for i in range(len(words) - n + 1)] if n else []


def shingle_hash32(shingle: bytes | str) -> int:
    """The hash `shingle_hashes` gives one shingle: datasketch's `hashfunc` for compatibility."""
    if isinstance(shingle, bytes):
        shingle = shingle.decode("utf-8", "surrogatepass")
    hashes = normalized_word_hashes(shingle)
    return int(_ngram_hashes(hashes, len(hashes))[0])


# ---------------------------------------------------------------- MinHash

@njit(cache=True, nogil=True)
def _affine32_min(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """datasketch's affine32 scheme: each hash through murmur3's 32-bit finalizer, then
    min over hashes of (a * h + b) mod 2^32 for every permutation (a, b)."""
    signature = np.full(len(a), np.uint32(0xFFFFFFFF), np.uint32)
    for h in hashes:
        h ^= h >> np.uint32(16)
        h = np.uint32(h * np.uint32(0x85EBCA6B))
        h ^= h >> np.uint32(13)
        h = np.uint32(h * np.uint32(0xC2B2AE35))
        h ^= h >> np.uint32(16)
        for j in range(len(a)):
            signature[j] = min(signature[j], np.uint32(a[j] * h + b[j]))
    return signature


class MinHasher:
    """datasketch-compatible MinHash (scheme "affine32" or "legacy") over numpy shingle hashes."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 5, scheme: Scheme = "affine32") -> None:
        self.num_perm, self.seed, self.ngram, self.scheme = num_perm, seed, ngram, scheme
        gen = np.random.RandomState(seed)  # the draws datasketch makes, in its order
        if scheme == "affine32":
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        elif scheme == "legacy":
            pairs = np.array([(gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                              for _ in range(num_perm)], dtype=np.uint64)
            self.a, self.b = pairs[:, 0].copy(), pairs[:, 1].copy()
        else:
            raise ValueError(f"MinHash scheme must be 'affine32' or 'legacy', got {scheme!r}")

    def signature_of_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """uint32 MinHash of 32-bit shingle hashes (repeats allowed; all-max for none, as datasketch)."""
        if len(hashes) == 0:
            return np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        if self.scheme == "legacy":
            permuted = np.multiply.outer(hashes.astype(np.uint64), self.a)  # wraps mod 2^64 as datasketch
            permuted += self.b
            permuted %= _MERSENNE
            permuted &= _U32
            return permuted.min(axis=0).astype(np.uint32)
        return _affine32_min(hashes.astype(np.uint32), self.a, self.b)

    def signature(self, text: str) -> np.ndarray:
        return self.signature_of_hashes(_ngram_hashes(normalized_word_hashes(text), self.ngram))

    def signature_and_text_hash(self, text: str) -> tuple[np.ndarray, int]:
        """Both signals from one normalization pass (what the annotate stage stores)."""
        codes, word_hashes = _normalized(text)
        return self.signature_of_hashes(_ngram_hashes(word_hashes, self.ngram)), _text_hash_of_codes(codes)


def signature_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity estimated from two signatures of the same hasher."""
    return float(np.count_nonzero(a == b)) / len(a)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two shingle sets given as sorted distinct arrays (`shingle_hashes`)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def lsh_params(threshold: float, num_perm: int, target_recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows per band): the most rows per band (fewest false candidates) whose S-curve still
    makes a pair at exactly `threshold` a candidate with probability >= `target_recall`.

    Candidates are verified afterwards, so a false candidate costs one check while a missed pair
    is a duplicate left in the corpus: the curve is placed below the threshold. (datasketch's
    `_optimal_param`, which weighs both errors alike, gives 9 x 13 at 0.8 / 128 and finds a pair at
    Jaccard 0.8 only 40% of the time.)
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= target_recall:
            return bands, rows
    return num_perm, 1


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """P(two documents with this Jaccard share at least one band bucket)."""
    return 1 - (1 - similarity ** rows) ** bands


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64 bucket keys: a hash of each band's rows, salted by band index."""
    acc = np.zeros((len(signatures), bands), dtype=np.uint64)
    for r in range(rows):
        acc *= GOLDEN64
        acc += signatures[:, r: bands * rows: rows]  # row r of every band
    acc += np.arange(bands, dtype=np.uint64) * WORD_BASE
    return mix64_short(acc)


def bucket_pairs(keys: np.ndarray, ids: np.ndarray, hubs: int = 8) -> np.ndarray:
    """Candidate pairs from colliding keys: each bucket member paired with the bucket's first
    `hubs` members (by id). Buckets of up to hubs + 1 give all their pairs; a bucket of k > hubs + 1
    gives about hubs * k pairs, not k^2. Several hubs matter because candidates are checked: with a
    single star centre, two true duplicates whose bucket centre is a weak collision would both
    lose their only edge. Returns a sorted, deduplicated (m, 2) array with a < b."""
    if len(keys) < 2:
        return np.zeros((0, 2), dtype=ids.dtype)
    order = np.lexsort((ids, keys))
    keys, ids = keys[order], ids[order]
    new_bucket = np.concatenate(([True], keys[1:] != keys[:-1]))
    start = np.flatnonzero(new_bucket)[np.cumsum(new_bucket) - 1]  # each member's bucket start
    position = np.arange(len(keys)) - start
    pairs = [np.stack([ids[start[m] + h], ids[m]], axis=1)
             for h in range(hubs) for m in [np.flatnonzero(position > h)]]
    pairs = np.concatenate(pairs)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def split_component(members: np.ndarray, similar: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Survivor of each member of one connected component, refusing chains.

    `members` are in survivor-preference order. The first remaining member becomes a survivor and
    takes every remaining member that `similar(center, others)` accepts; repeat with the rest.
    """
    survivor = members.copy()
    remaining = np.arange(len(members))  # positions in `members`
    while len(remaining) > 1:
        center, rest = remaining[0], remaining[1:]
        taken = similar(int(members[center]), members[rest])
        survivor[rest[taken]] = members[center]
        remaining = rest[~taken]
    return survivor


def connected_components(n: int, edges: np.ndarray) -> np.ndarray:
    """Component label per item of 0..n-1 (scipy; the edge list must fit in memory)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    if len(edges) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return scipy_components(graph, directed=False)[1]


def components_in_rank_order(labels: np.ndarray, rank: np.ndarray) -> list[np.ndarray]:
    """Members of every component with more than one member, each sorted best rank first."""
    order = np.lexsort((rank, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_labels[1:] != sorted_labels[:-1])))
    groups = np.split(order, starts[1:])
    return [g for g in groups if len(g) > 1]


def cluster(n: int, edges: np.ndarray, rank: np.ndarray,
            similar: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Survivor index per item from verified edges: connected components, each split by
    `split_component` (best `rank` first, lowest wins). Items in no edge survive themselves."""
    survivor = np.arange(n)
    for members in components_in_rank_order(connected_components(n, edges), rank):
        survivor[members] = split_component(members, similar)
    return survivor


def exact_similar(sets: Sequence[np.ndarray], threshold: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """`similar` for `cluster` on exact shingle Jaccard of `sets[i]`."""
    return lambda center, others: np.array([exact_jaccard(sets[center], sets[o]) >= threshold for o in others],
                                           dtype=bool)


def signature_similar(signatures: np.ndarray, threshold: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """`similar` for `cluster` on signature-estimated Jaccard of rows of `signatures`."""
    need = threshold * signatures.shape[1]
    return lambda center, others: (signatures[others] == signatures[center]).sum(axis=1) >= need


# ---------------------------------------------------------------- lines

def line_key(line: str) -> int:
    """Hash identifying a line for boilerplate counting (surrounding whitespace ignored)."""
    return xxhash.xxh3_64_intdigest(line.strip().encode("utf-8", "surrogatepass"))


def distinct_line_keys(text: str, min_chars: int) -> list[int]:
    """Keys of a document's distinct lines with at least `min_chars` non-space characters."""
    return list({line_key(line) for line in text.split("\n") if len(line.strip()) >= min_chars})


def remove_lines(text: str, drop: set[int] | frozenset[int], min_chars: int) -> tuple[str, int]:
    """(text without the lines whose key is in `drop`, number of lines removed). Lines shorter
    than `min_chars` are never removed; an untouched text comes back unchanged."""
    if not drop:
        return text, 0
    lines = text.split("\n")
    kept = [line for line in lines if len(line.strip()) < min_chars or line_key(line) not in drop]
    removed = len(lines) - len(kept)
    return ("\n".join(kept), removed) if removed else (text, 0)


# ---------------------------------------------------------------- the annotate-stage filter

class MinHashParams(FilterParams):
    """128 permutations by default: candidates are checked on exact shingle Jaccard, so the
    signature only has to find them (P = R = 1.0 at 0.8 in bench_dedup); 256 helps only when
    `dedup.near.verify_with: signature` trusts the estimate itself."""

    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (signature length)")
    ngram: int = Field(5, ge=1, le=32, description="Words per shingle")
    seed: int = Field(1, ge=0, description="Permutation seed (datasketch's `seed`)")
    scheme: Scheme = Field("affine32", description="datasketch permutation scheme: affine32 (>= 2.0) or legacy")


class MinHashFilter(DocFilter):
    """Stores the MinHash signature and normalized-text hash; dedup itself is a global stage."""

    name = "minhash"
    Params = MinHashParams
    order = 90  # signals of the final text for the dedup stage; it removes nothing itself
    signature_column = "minhash"
    text_hash_column = "text_hash"

    def __init__(self, params: MinHashParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._hasher: MinHasher | None = None

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field(self.signature_column, pa.list_(pa.uint32(), self.params.num_perm)),
                pa.field(self.text_hash_column, pa.uint64())]

    def annotate(self, doc: Document) -> None:
        if self._hasher is None:
            p = self.params
            self._hasher = MinHasher(p.num_perm, p.seed, p.ngram, p.scheme)
        signature, digest = self._hasher.signature_and_text_hash(doc.text)
        doc.signals[self.signature_column], doc.signals[self.text_hash_column] = signature, digest


# ---------------------------------------------------------------- file-level APIs

def _read_text(path: str | os.PathLike) -> str:
    return Path(path).read_bytes().decode("utf-8", errors="surrogateescape")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))


def _exact_line_keys(lines: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(line.encode("utf-8", "surrogateescape")) for line in lines),
                       dtype=np.uint64, count=len(lines))


def exact_line_dedup(input_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike) -> dict[str, int]:
    """Keep only the lines that occur exactly once in the whole corpus.

    Two passes: count every line (its content without the line break, by 64-bit hash: 8 bytes per
    line) across all files, then write each file under the same name to `output_dir` with only its
    lines of count 1, line breaks as they were.
    """
    names = [Path(p).name for p in input_paths]
    if len(set(names)) != len(names):
        raise ValueError(f"exact_line_dedup: input file names must be distinct (outputs use them): {names}")
    keys = [_exact_line_keys(_read_text(p).splitlines()) for p in input_paths]
    values, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.uint64), return_counts=True)
    once = values[counts == 1]
    out = Path(output_dir)
    lines_in = lines_out = 0
    for path, file_keys in zip(input_paths, keys):
        lines = _read_text(path).splitlines(keepends=True)
        keep = np.isin(file_keys, once)
        lines_in += len(lines)
        lines_out += int(keep.sum())
        _write_text(out / Path(path).name, "".join(line for line, k in zip(lines, keep) if k))
    return {"files": len(input_paths), "lines_in": lines_in, "lines_out": lines_out}


def minhash_dedup(input_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
                  num_hashes: int, num_bands: int, ngrams: int, jaccard_threshold: float,
                  seed: int = 1) -> dict[str, Any]:
    """Near-duplicate removal with one document per file; survivors are written under the same names.

    LSH over `num_bands` bands of `num_hashes // num_bands` rows proposes candidates; a pair
    becomes an edge only if its exact shingle Jaccard is >= `jaccard_threshold`; clusters refuse
    chains (`split_component`); the first file of each cluster in input order survives.
    """
    if num_bands < 1 or num_hashes % num_bands:
        raise ValueError(f"num_hashes ({num_hashes}) must be a multiple of num_bands ({num_bands})")
    names = [Path(p).name for p in input_paths]
    if len(set(names)) != len(names):
        raise ValueError(f"minhash_dedup: input file names must be distinct (outputs use them): {names}")
    hasher = MinHasher(num_hashes, seed, ngrams)
    texts = [_read_text(p) for p in input_paths]
    sets = [shingle_hashes(t, ngrams) for t in texts]
    n = len(texts)
    signatures = np.stack([hasher.signature_of_hashes(s) for s in sets]) if n else \
        np.zeros((0, num_hashes), dtype=np.uint32)
    candidates = bucket_pairs(band_keys(signatures, num_bands, num_hashes // num_bands).reshape(-1),
                              np.repeat(np.arange(n), num_bands))
    similar = exact_similar(sets, jaccard_threshold)
    verified = np.array([similar(int(a), np.array([b]))[0] for a, b in candidates], dtype=bool)
    edges = candidates[verified] if len(candidates) else candidates
    survivor = cluster(n, edges, np.arange(n), similar)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(input_paths):
        if survivor[i] == i:
            _write_text(out / names[i], texts[i])
    sizes = Counter(Counter(survivor.tolist()).values())
    kept = int(np.sum(survivor == np.arange(n)))
    return {"files": n, "kept": kept, "removed": n - kept,
            "candidate_pairs": int(len(candidates)), "verified_pairs": int(len(edges)),
            "cluster_sizes": {int(k): int(v) for k, v in sorted(sizes.items())}}


def url_keys(values: Iterable[Any]) -> np.ndarray:
    """uint64 hashes of URLs (for URL dedup)."""
    return np.fromiter((xxhash.xxh3_64_intdigest(str(v).encode("utf-8", "surrogatepass")) for v in values),
                       dtype=np.uint64)
