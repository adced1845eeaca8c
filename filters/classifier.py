"""fastText classifiers (quality, NSFW, hate speech, language ID) predicted in compiled code.

Through the fasttext library every call re-reads the text into C++ strings, splits and hashes it
again, and decodes every quantized row it adds: ~80 µs per model on a 5,000-character document,
and the three content classifiers read the same documents. `Classifier` instead reads the model
file itself (fastText's `FastText::saveModel` format; quantized rows are decoded once at load)
and predicts with numba-compiled loops: for the content classifiers `prepare_text` and fastText's
tokenizer are fused into one pass shared by every model, which then only looks its tokens up,
hashes the word n-grams (and character n-grams, as lid.176 has) into its buckets and averages
rows; softmax and hierarchical softmax (lid.176) outputs are computed as fastText computes them.
The results equal the library's (label and probability, to float32 rounding; the tests compare
both on real text). Supervised models with another loss (one-vs-all, negative sampling) or a
quantized output matrix go through the fasttext library.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from filters.base import batch_cache
from filters.models import (QUOTES, SPLIT_MARKS, ModelError, ModelSpec, model_normalization, normalize_text,
                            prepare_text, resolve_model, spec_for)
from filters.hashing import GOLDEN32, place_keys, table_size
from filters.text import char_tables, code_points

_MAGIC, _VERSION = 793712314, 12
_KSUB = 256  # centroids per product-quantizer subspace
_EOS = b"</s>"
_LABEL_PREFIX = np.frombuffer(b"__label__", dtype=np.uint8)
_EOS_BYTES = np.frombuffer(_EOS, dtype=np.uint8)
_FNV_OFFSET = np.uint32(2166136261)


def _fnv1a(word: bytes) -> int:
    """fastText's word hash: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended."""
    h = int(_FNV_OFFSET)
    for byte in word:
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * 16777619) & 0xFFFFFFFF
    return h


_EOS_HASH = np.uint32(_fnv1a(_EOS))


@njit(cache=True, nogil=True, inline="always")
def _fnv_step(h: np.uint32, byte: np.uint8) -> np.uint32:
    """One byte of `_fnv1a` (the byte sign-extended, as fastText's `int8_t` cast does)."""
    value = np.uint32(byte)
    if value >= 0x80:
        value |= np.uint32(0xFFFFFF00)
    return np.uint32((h ^ value) * np.uint32(16777619))


@lru_cache(maxsize=1)
def _mark_table() -> np.ndarray:
    """prepare_text's rules by code point below 0x2100: 0 = plain, 1 = a mark split off words,
    else the straight quote a curly one becomes."""
    table = np.zeros(0x2100, np.int32)
    for mark in SPLIT_MARKS:
        table[ord(mark)] = 1
    for curly, straight in QUOTES:
        table[ord(curly)] = ord(straight)
    return table


@njit(cache=True, nogil=True)
def _put_utf8(buf: np.ndarray, size: int, code: int) -> int:
    """Append `code` to `buf` as UTF-8 (a lone surrogate as '?', as encode(errors="replace"))."""
    if code < 0x80:
        buf[size] = code
        return size + 1
    if code < 0x800:
        buf[size], buf[size + 1] = 0xC0 | (code >> 6), 0x80 | (code & 0x3F)
        return size + 2
    if 0xD800 <= code < 0xE000:
        buf[size] = 0x3F
        return size + 1
    if code < 0x10000:
        buf[size], buf[size + 1], buf[size + 2] = 0xE0 | (code >> 12), 0x80 | ((code >> 6) & 0x3F), 0x80 | (code & 0x3F)
        return size + 3
    buf[size], buf[size + 1] = 0xF0 | (code >> 18), 0x80 | ((code >> 12) & 0x3F)
    buf[size + 2], buf[size + 3] = 0x80 | ((code >> 6) & 0x3F), 0x80 | (code & 0x3F)
    return size + 4


@njit(cache=True, nogil=True)
def _line_tokens(codes: np.ndarray, is_space: np.ndarray, marks: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """The tokens fastText reads from `prepare_text` of the (lowercased) code points: (UTF-8
    bytes, token starts, token ends, fastText hashes, whether the prepared line is non-empty).

    Tokens are runs between whitespace (Python's, as `str.split`) and NUL (fastText's); each
    mark of `SPLIT_MARKS` (after quotes are unified) is a token of its own.
    """
    buf = np.empty(4 * len(codes), np.uint8)
    starts = np.empty(len(codes) + 1, np.int32)  # int32: 12 bytes of scratch per character
    ends = np.empty(len(codes) + 1, np.int32)
    last_space, last_mark = len(is_space) - 1, len(marks)
    size = count = 0
    inside = nonempty = False
    for point in codes:
        code = np.int64(point)
        space = is_space[min(code, last_space)]
        nonempty |= not space
        kind = marks[code] if code < last_mark else 0
        if kind > 1:  # a curly quote: its straight form, a mark
            code, kind = np.int64(kind), 1
        if space or code == 0 or kind == 1:
            if inside:
                ends[count] = size
                count += 1
                inside = False
            if kind == 1:
                starts[count] = size
                size = _put_utf8(buf, size, code)
                ends[count] = size
                count += 1
            continue
        if not inside:
            starts[count] = size
            inside = True
        size = _put_utf8(buf, size, code)
    if inside:
        ends[count] = size
        count += 1
    hashes = np.empty(count, np.uint32)
    for t in range(count):
        h = _FNV_OFFSET
        for i in range(starts[t], ends[t]):
            h = _fnv_step(h, buf[i])
        hashes[t] = h
    return buf[:size], starts[:count], ends[:count], hashes, nonempty


@dataclass(frozen=True)
class Tokens:
    """A document as fastText's tokenizer sees `prepare_text` of it."""

    buf: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    hashes: np.ndarray
    nonempty: bool


@batch_cache  # the quality, NSFW and hate models read the same documents
def document_tokens(key: tuple[str, int | None]) -> Tokens:
    """Tokens of `prepare_text(text, max_chars)` for key = (text, max_chars)."""
    text, max_chars = key
    text = (text[:max_chars] if max_chars is not None else text).lower()
    codes = code_points(text)
    return Tokens(*_line_tokens(codes, char_tables()[0], _mark_table()))


@batch_cache  # the NSFW and hate models read the same normalized documents
def normalized_tokens(key: tuple[str, int | None, str]) -> Tokens:
    """Tokens of `prepare_text(text, max_chars, normalization=...)` for key = (text, max_chars,
    normalization); when the normalization changes nothing but the case (most pages: it lowercases
    whatever it looks at), the tokens every content model shares, which are of the lowercased text."""
    text, max_chars, normalization = key
    cut = text[:max_chars] if max_chars is not None else text
    folded = normalize_text(cut, normalization)
    same = folded is cut or folded == cut.lower()
    return document_tokens((text, max_chars) if same else (folded, None))


@njit(cache=True, nogil=True)
def _split_bytes(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, fastText hashes) of the tokens of UTF-8 `buf` as fastText's `readWord`
    splits a line: at space, tab, vertical tab, form feed, carriage return and NUL."""
    starts = np.empty(len(buf) // 2 + 1, np.int32)
    ends = np.empty(len(buf) // 2 + 1, np.int32)
    hashes = np.empty(len(buf) // 2 + 1, np.uint32)
    count, i = 0, 0
    while i < len(buf):
        if buf[i] == 32 or buf[i] == 0 or 9 <= buf[i] <= 13:
            i += 1
            continue
        starts[count], h = i, _FNV_OFFSET
        while i < len(buf) and not (buf[i] == 32 or buf[i] == 0 or 9 <= buf[i] <= 13):
            h = _fnv_step(h, buf[i])
            i += 1
        ends[count], hashes[count] = i, h
        count += 1
    return starts[:count], ends[:count], hashes[:count]


def line_tokens(line: str) -> Tokens:
    """Tokens of one line as fastText reads it (no normalization; lone surrogates become "?")."""
    buf = np.frombuffer(line.encode("utf-8", "replace"), dtype=np.uint8)
    return Tokens(buf, *_split_bytes(buf), nonempty=bool(line))


@njit(cache=True, nogil=True)
def _is(buf: np.ndarray, start: int, end: int, expected: np.ndarray) -> bool:
    """buf[start:end] == expected."""
    if end - start != len(expected):
        return False
    for k in range(len(expected)):
        if buf[start + k] != expected[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _find_word(buf: np.ndarray, start: int, end: int, h: np.uint32, table: np.ndarray,
               vocab: np.ndarray, offsets: np.ndarray) -> int:
    """Id of the word buf[start:end] with fastText hash h, or -1."""
    mask = len(table) - 1
    slot = np.int64(h) & mask
    while table[slot] != -1:
        word = table[slot]
        if _is(buf, start, end, vocab[offsets[word]: offsets[word + 1]]):
            return word
        slot = (slot + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _bucket_row(bucket_id: int, keys: np.ndarray, values: np.ndarray, pruned: int) -> int:
    """Row (after the words) of an n-gram bucket: the bucket itself in a full model, the row
    quantization kept it in, or -1 if it was pruned. `keys` starts with a bitmap of the kept
    buckets (most n-grams of a text are pruned: one bit test, in cache), then the open-addressing
    table bucket -> row (`values`)."""
    if pruned < 0:
        return bucket_id
    bits = (len(keys) - len(values))
    if not (keys[bucket_id >> 5] >> (bucket_id & 31)) & 1:
        return -1
    mask = len(values) - 1
    slot = (bucket_id * GOLDEN32) & mask
    while keys[bits + slot] != -1:
        if keys[bits + slot] == bucket_id:
            return values[slot]
        slot = (slot + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _add_row(hidden: np.ndarray, rows: np.ndarray, row: int) -> None:
    for j in range(len(hidden)):
        hidden[j] += rows[row, j]


@njit(cache=True, nogil=True)
def _subword_rows(word: np.ndarray, minn: int, maxn: int, bucket: int, keys: np.ndarray, values: np.ndarray,
                  pruned: int, scratch: np.ndarray, out: np.ndarray) -> int:
    """Rows (after the words) of the character n-grams of "<word>" into `out`, as
    `Dictionary::computeSubwords` finds them: n from minn to maxn UTF-8 characters, no lone
    "<" or ">", pruned buckets skipped. Returns how many."""
    size = len(word) + 2
    scratch[0], scratch[size - 1] = 60, 62  # "<", ">"
    scratch[1: size - 1] = word
    count = 0
    for i in range(size):
        if (scratch[i] & 0xC0) == 0x80:
            continue  # not the first byte of a character
        h = _FNV_OFFSET
        j, n = i, 1
        while j < size and n <= maxn:
            while True:
                h = _fnv_step(h, scratch[j])
                j += 1
                if j >= size or (scratch[j] & 0xC0) != 0x80:
                    break
            if n >= minn and not (n == 1 and (i == 0 or j == size)):
                row = _bucket_row(np.int64(h % np.uint32(bucket)), keys, values, pruned)
                if row >= 0:
                    out[count] = row
                    count += 1
            n += 1
    return count


@njit(cache=True, nogil=True)
def _vocabulary_subwords(vocab: np.ndarray, offsets: np.ndarray, minn: int, maxn: int, bucket: int,
                         keys: np.ndarray, values: np.ndarray, pruned: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, rows): each known word's n-gram rows, computed once at load as fastText's
    `Dictionary::initNgrams` does (none for "</s>")."""
    longest = 0
    for w in range(len(offsets) - 1):
        longest = max(longest, offsets[w + 1] - offsets[w])
    scratch = np.empty(longest + 2, np.uint8)
    out = np.empty(maxn * (longest + 2), np.int64)
    starts = np.zeros(len(offsets), np.int64)
    chunks = []
    for w in range(len(offsets) - 1):
        word = vocab[offsets[w]: offsets[w + 1]]
        count = 0 if _is(word, 0, len(word), _EOS_BYTES) else _subword_rows(
            word, minn, maxn, bucket, keys, values, pruned, scratch, out)
        chunks.append(out[:count].copy())
        starts[w + 1] = starts[w] + count
    rows = np.empty(starts[-1], np.int64)
    for w in range(len(chunks)):
        rows[starts[w]: starts[w + 1]] = chunks[w]
    return starts, rows


@njit(cache=True, nogil=True)
def _hidden(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, hashes: np.ndarray,
            table: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, eos_hash: np.uint32,
            minn: int, maxn: int, word_ngrams: int, bucket: int, keys: np.ndarray, values: np.ndarray,
            pruned: int, subword_offsets: np.ndarray, subword_rows: np.ndarray, rows: np.ndarray
            ) -> tuple[np.ndarray, int]:
    """fastText's hidden vector of a line and how many rows it averages (0: no prediction).

    As `Dictionary::getLine` + `addWordNgrams` + `Model::computeHidden`, rows added in the same
    order: per token its word row if known and its character n-grams (models with subwords),
    the end-of-line token last (unless a literal "</s>" ended the line first), then the word
    n-grams' buckets; then the float32 mean.
    """
    nwords = len(offsets) - 1
    hidden = np.zeros(rows.shape[1], np.float32)
    word_hashes = np.empty(len(starts) + 1, np.int64)
    longest = int((ends - starts).max()) + 2 if len(starts) else 2
    scratch, found = np.empty(longest, np.uint8), np.empty(max(maxn, 1) * longest, np.int64)
    kept = used = 0
    for t in range(len(starts) + 1):
        last = t == len(starts)
        if last:
            start, end, h = 0, 0, eos_hash
            word = _find_word(_EOS_BYTES, 0, len(_EOS_BYTES), h, table, vocab, offsets)
        else:
            start, end, h = starts[t], ends[t], hashes[t]
            if _is(buf, start, min(end, start + len(_LABEL_PREFIX)), _LABEL_PREFIX):
                continue  # "__label__..." is a label to fastText, never a word
            word = _find_word(buf, start, end, h, table, vocab, offsets)
        eos = last or _is(buf, start, end, _EOS_BYTES)
        if word >= 0:
            _add_row(hidden, rows, word)
            used += 1
            for k in range(subword_offsets[word], subword_offsets[word + 1]):
                _add_row(hidden, rows, nwords + subword_rows[k])
            used += subword_offsets[word + 1] - subword_offsets[word]
        elif maxn > 0 and not eos:
            count = _subword_rows(buf[start:end], minn, maxn, bucket, keys, values, pruned, scratch, found)
            for k in range(count):
                _add_row(hidden, rows, nwords + found[k])
            used += count
        word_hashes[kept] = np.int64(np.int32(h))  # fastText keeps them as int32
        kept += 1
        if eos:
            break  # a literal "</s>" ends the line for fastText
    for i in range(kept):
        h = np.uint64(word_hashes[i])
        for j in range(i + 1, min(kept, i + word_ngrams)):
            h = h * np.uint64(116049371) + np.uint64(word_hashes[j])
            row = _bucket_row(np.int64(h % np.uint64(bucket)), keys, values, pruned)
            if row >= 0:
                _add_row(hidden, rows, nwords + row)
                used += 1
    if used:
        hidden *= np.float32(1.0 / used)
    return hidden, used


@njit(cache=True, nogil=True)
def _std_log(x: np.float32) -> np.float32:
    """fastText's std_log: log(x + 1e-5) in double precision, kept as float32."""
    return np.float32(np.log(np.float64(x) + 1e-5))


@njit(cache=True, nogil=True)
def _dot(output: np.ndarray, row: int, hidden: np.ndarray) -> np.float32:
    total = np.float32(0.0)
    for j in range(len(hidden)):
        total += output[row, j] * hidden[j]
    return total


@njit(cache=True, nogil=True)
def _softmax(hidden: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Each label's probability as fastText reports it: softmax, then exp(std_log(p))."""
    scores = np.empty(output.shape[0], np.float32)
    for i in range(len(scores)):
        scores[i] = _dot(output, i, hidden)
    top = scores.max()
    total = np.float32(0.0)
    for i in range(len(scores)):
        scores[i] = np.exp(scores[i] - top)
        total += scores[i]
    for i in range(len(scores)):
        scores[i] = np.exp(_std_log(scores[i] / total))
    return scores


@njit(cache=True, nogil=True)
def _hs_best(hidden: np.ndarray, output: np.ndarray, left: np.ndarray, right: np.ndarray
             ) -> tuple[int, np.float32]:
    """The most probable label of a hierarchical-softmax model and its probability, as fastText's
    depth-first search with k=1 finds it (branches below the best leaf so far or below
    log(1e-5) are cut; on a tie the later leaf wins); (-1, 0) if every leaf was cut."""
    labels = output.shape[0]
    floor = _std_log(np.float32(0.0))
    best, best_score = -1, np.float32(0.0)
    nodes = np.empty(2 * labels, np.int64)
    scores = np.empty(2 * labels, np.float32)
    nodes[0], scores[0], depth = 2 * labels - 2, np.float32(0.0), 1
    while depth:
        depth -= 1
        node, score = nodes[depth], scores[depth]
        if score < floor or (best >= 0 and score < best_score):
            continue
        if left[node] == -1 and right[node] == -1:
            best, best_score = node, score
            continue
        f = _dot(output, node - labels, hidden)
        f = np.float32(1.0 / np.float64(np.float32(1.0) + np.exp(-f)))
        # pushed right first so that the left subtree is searched first, as fastText's recursion
        nodes[depth], scores[depth] = right[node], score + _std_log(f)
        nodes[depth + 1], scores[depth + 1] = left[node], score + _std_log(np.float32(1.0 - np.float64(f)))
        depth += 2
    return best, np.exp(best_score)


class _Reader:
    """Little-endian reads from a model file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: Any, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def word(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        value, self.pos = self.data[self.pos:end], end + 1
        return value

    def dense(self) -> np.ndarray:
        m, n = self.take("2q")
        return self.array(np.float32, m * n).reshape(m, n)

    def quantized(self) -> np.ndarray:
        """A product-quantized matrix, decoded: row i = norm_i * its centroids, in float32 as
        fastText's `ProductQuantizer::addcode` computes them."""
        qnorm, = self.take("?")
        m, n = self.take("2q")
        codes = self.array(np.uint8, self.take("i")[0])
        _, nsubq, dsub, lastdsub = self.take("4i")
        centroids = self.array(np.float32, n * _KSUB)
        norms = np.ones(m, np.float32)
        if qnorm:
            norm_codes = self.array(np.uint8, m)
            self.take("4i")
            norms = self.array(np.float32, _KSUB)[norm_codes]
        codes = codes.reshape(m, nsubq)
        rows = np.empty((m, n), np.float32)
        for sub in range(nsubq):
            width = lastdsub if sub == nsubq - 1 else dsub
            table = centroids[sub * _KSUB * dsub: sub * _KSUB * dsub + _KSUB * width].reshape(_KSUB, width)
            rows[:, sub * dsub: sub * dsub + width] = norms[:, None] * table[codes[:, sub]]
        return rows


_HS, _SOFTMAX, _SUPERVISED = 1, 3, 3  # fastText's loss_name::hs, ::softmax, model_name::sup


def _huffman_tree(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) children of each node of the label tree, built from the label counts as
    `HierarchicalSoftmaxLoss::buildTree` builds it (leaves 0..n-1, root 2n-2)."""
    n = len(counts)
    count = list(counts) + [10**15] * (n - 1)
    left, right = np.full(2 * n - 1, -1, np.int64), np.full(2 * n - 1, -1, np.int64)
    leaf, node = n - 1, n
    for parent in range(n, 2 * n - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        left[parent], right[parent] = pair
        count[parent] = count[pair[0]] + count[pair[1]]
    return left, right


def _bucket_table(pairs: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) for `_bucket_row`: a bitmap of the buckets quantization kept, followed by an
    open-addressing table bucket -> row (a dense map of 2M buckets would miss the cache per n-gram)."""
    bucket_ids = pairs[:, 0].astype(np.int64)
    bitmap = np.zeros((bucket + 31) // 32, np.uint32)
    np.bitwise_or.at(bitmap, bucket_ids >> 5, np.left_shift(np.uint32(1), (bucket_ids & 31).astype(np.uint32)))
    slots = place_keys((bucket_id * GOLDEN32 for bucket_id in bucket_ids.tolist()), table_size(len(pairs)))
    placed = slots >= 0
    keys, values = np.full(len(slots), -1, np.int32), np.full(len(slots), -1, np.int32)
    keys[placed], values[placed] = pairs[slots[placed], 0], pairs[slots[placed], 1]
    return np.concatenate([bitmap.view(np.int32), keys]), values


@dataclass
class CompiledModel:
    """A supervised fastText model (softmax or hierarchical softmax), predicted in compiled code."""

    labels: list[str]  # fastText labels in output order, "__label__" removed
    loss: int
    minn: int
    maxn: int
    word_ngrams: int
    bucket: int
    table: np.ndarray  # open addressing by fastText hash -> word id (-1 empty)
    vocab: np.ndarray  # the words' UTF-8 bytes, concatenated
    offsets: np.ndarray  # word i is vocab[offsets[i]:offsets[i + 1]]
    pruned: int  # buckets kept by quantization (-1: all, 0: none)
    bucket_keys: np.ndarray
    bucket_values: np.ndarray
    subword_offsets: np.ndarray  # known word i's n-gram rows: subword_rows[offsets[i]:offsets[i + 1]]
    subword_rows: np.ndarray
    rows: np.ndarray
    output: np.ndarray
    left: np.ndarray  # label tree (hierarchical softmax only)
    right: np.ndarray

    def _hidden(self, tokens: Tokens) -> tuple[np.ndarray, int]:
        return _hidden(tokens.buf, tokens.starts, tokens.ends, tokens.hashes, self.table, self.vocab, self.offsets,
                       _EOS_HASH, self.minn, self.maxn, self.word_ngrams, self.bucket, self.bucket_keys,
                       self.bucket_values, self.pruned, self.subword_offsets, self.subword_rows, self.rows)

    def probabilities(self, tokens: Tokens) -> np.ndarray:
        """Every label's probability (softmax models; empty when fastText predicts nothing)."""
        hidden, used = self._hidden(tokens)
        return _softmax(hidden, self.output) if used else np.zeros(0, np.float32)

    def best(self, tokens: Tokens) -> tuple[str, float] | None:
        """The most probable label and its probability, as fastText's predict(k=1)."""
        hidden, used = self._hidden(tokens)
        if not used:
            return None
        if self.loss == _HS:
            label, prob = _hs_best(hidden, self.output, self.left, self.right)
            return (self.labels[label], float(prob)) if label >= 0 else None
        probs = _softmax(hidden, self.output)
        label = len(probs) - 1 - int(np.argmax(probs[::-1]))  # on a tie the later label, as fastText
        return self.labels[label], float(probs[label])


def read_compiled_model(path: Path) -> CompiledModel | None:
    """The model at `path` if `_hidden` and `_softmax`/`_hs_best` compute it, else None
    (not a fastText supervised model, another loss, or a quantized output matrix)."""
    reader = _Reader(path.read_bytes())
    if len(reader.data) < 8 or reader.take("2i") != (_MAGIC, _VERSION):
        return None
    (_dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn,
     _lr_update_rate) = reader.take("12i")
    reader.take("d")
    if loss not in (_HS, _SOFTMAX) or model != _SUPERVISED:
        return None
    size, nwords, _nlabels = reader.take("3i")
    _ntokens, pruned = reader.take("2q")
    words, counts = [], []
    for _ in range(size):
        words.append(reader.word())
        counts.append(reader.take("qb")[0])
    pairs = reader.array(np.int32, 2 * max(pruned, 0)).reshape(-1, 2)
    quantized, = reader.take("?")
    rows = reader.quantized() if quantized else reader.dense()
    quantized_output, = reader.take("?")
    if quantized and quantized_output:
        return None
    output = reader.dense()
    table = place_keys((_fnv1a(word) for word in words[:nwords]), table_size(nwords))
    left, right = _huffman_tree(counts[nwords:]) if loss == _HS else (np.zeros(0, np.int64),) * 2
    keys, values = _bucket_table(pairs, max(bucket, 1))
    vocab = np.frombuffer(b"".join(words[:nwords]), dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum([len(w) for w in words[:nwords]], dtype=np.int64)))
    pruned = -1 if pruned < 0 and bucket > 0 else max(pruned, 0)
    bucket = max(bucket, 1)
    if maxn > 0:
        subword_offsets, subword_rows = _vocabulary_subwords(vocab, offsets, minn, maxn, bucket, keys, values, pruned)
    else:
        subword_offsets, subword_rows = np.zeros(nwords + 1, np.int64), np.zeros(0, np.int64)
    return CompiledModel(
        labels=[w.decode("utf-8").removeprefix("__label__") for w in words[nwords:]], loss=loss,
        minn=minn, maxn=maxn, word_ngrams=word_ngrams, bucket=bucket, table=table, vocab=vocab, offsets=offsets,
        pruned=pruned, bucket_keys=keys, bucket_values=values, subword_offsets=subword_offsets,
        subword_rows=subword_rows, rows=np.ascontiguousarray(rows), output=np.ascontiguousarray(output), left=left, right=right)


class Classifier:
    """A fastText classifier by registry name or path, with Sieve's label names."""

    def __init__(self, name_or_path: str) -> None:
        self.name = name_or_path
        self.spec: ModelSpec = spec_for(name_or_path)
        self.path = resolve_model(name_or_path)
        self.normalization = model_normalization(self.spec, self.path)
        try:
            self.compiled = read_compiled_model(self.path)
        except (ValueError, IndexError, struct.error):
            self.compiled = None  # not a file this reader understands: the library decides
        self._library: Any = None

    @property
    def labels(self) -> list[str]:
        """The model's labels ("__label__" removed), in its output order."""
        if self.compiled is not None:
            return self.compiled.labels
        return [label.removeprefix("__label__") for label in self.library.get_labels()]

    @property
    def library(self) -> Any:
        """The fasttext library's model, loaded on first use."""
        if self._library is None:
            import fasttext

            try:
                self._library = fasttext.load_model(str(self.path))
            except ValueError as exc:
                raise ModelError(f"model {self.name!r}: {self.path} is not a fastText model ({exc})") from exc
        return self._library

    def probability(self, text: str, positive: str, max_chars: int | None) -> float:
        """P(Sieve label `positive`) of `prepare_text(text, max_chars)` (after the normalization the
        model declares); 0.0 for text without
        words (nothing to classify)."""
        if self.compiled is not None and self.compiled.loss == _SOFTMAX:
            tokens = self.tokens(text, max_chars)
            if not tokens.nonempty:
                return 0.0
            labels, probs = self.compiled.labels, self.compiled.probabilities(tokens)
        else:
            line = prepare_text(text, max_chars, normalization=self.normalization)
            if not line:
                return 0.0
            labels, probs = self._library_predict(line, -1)  # every label: order and top-1 do not matter
        for label, prob in zip(labels, probs):
            if self.spec.sieve_label(label) == positive:
                return min(max(float(prob), 0.0), 1.0)
        return 0.0

    def tokens(self, text: str, max_chars: int | None) -> Tokens:
        """The tokens this model reads of `text`: `prepare_text` of its first `max_chars`
        characters after the model's normalization (shared by the models of a batch)."""
        if self.normalization is None:
            return document_tokens((text, max_chars))
        return normalized_tokens((text, max_chars, self.normalization))

    def best_label(self, line: str) -> tuple[str, float] | None:
        """fastText's most probable label of one line (as given, no normalization) and its
        probability; None when the model predicts nothing."""
        if self.compiled is not None:
            return self.compiled.best(line_tokens(line))
        labels, probs = self._library_predict(line, 1)
        return (labels[0].removeprefix("__label__"), float(probs[0])) if len(labels) else None

    def _library_predict(self, line: str, k: int) -> tuple[Any, Any]:
        """The library's labels and probabilities; lone surrogates are replaced, not fatal."""
        try:
            return self.library.predict(line, k=k)
        except (TypeError, ValueError, UnicodeEncodeError):
            return self.library.predict(line.encode("utf-8", "replace").decode("utf-8"), k=k)


@lru_cache(maxsize=16)
def load_classifier(name_or_path: str) -> Classifier:
    """The classifier named `name_or_path`, loaded once per process."""
    return Classifier(name_or_path)
