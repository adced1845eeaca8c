"""fastText text classifiers with Sieve's label names, predicted in compiled code when possible.

The quality, NSFW and hate-speech filters each ask a fastText model about the same documents.
Through the fasttext library every call re-reads the text into C++ strings, splits and hashes it
again, and decodes every quantized row it adds: ~80 µs per model on a 5,000-character document.
Sieve's own models and the published Dolma/DCLM ones are the simple kind of fastText classifier:
words and word n-grams (no character n-grams), softmax output. For those, `Classifier` reads the
model file itself (its format: fastText's `FastText::saveModel`; quantized rows are decoded once
at load) and predicts with numba-compiled loops: the document is normalized and split once
(`prepare_text` and fastText's tokenizer fused into one pass, shared by every model), each model
then only looks its tokens up, hashes the word n-grams into its buckets and averages rows. The
probabilities equal the library's to float32 rounding (the tests compare both on real text);
any other model (character n-grams, hierarchical softmax, quantized output) goes through the
fasttext library.
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
from filters.models import ModelSpec, ModelError, prepare_text, resolve_model, spec_for
from filters.text import _char_tables

_MAGIC, _VERSION = 793712314, 12
_SOFTMAX, _SUPERVISED = 3, 3  # fastText's loss_name::softmax and model_name::sup
_KSUB = 256  # centroids per product-quantizer subspace
_EOS = b"</s>"
_LABEL_PREFIX = np.frombuffer(b"__label__", dtype=np.uint8)
_EOS_BYTES = np.frombuffer(_EOS, dtype=np.uint8)
# prepare_text's rules as code-point tables: quote styles unified, these marks split off words.
_QUOTE_MAP = {ord(k): ord(v) for k, v in (("“", '"'), ("”", '"'), ("„", '"'), ("«", '"'), ("»", '"'),
                                          ("‘", "'"), ("’", "'"), ("‚", "'"))}
_SPLIT_MARKS = ".,!?;:()[]{}\"'…—–"


def _fnv1a(word: bytes) -> int:
    """fastText's word hash: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended."""
    h = 2166136261
    for byte in word:
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * 16777619) & 0xFFFFFFFF
    return h


@lru_cache(maxsize=1)
def _mark_table() -> np.ndarray:
    """Per code point below 0x2100: 0 = plain, 1 = a mark split off words, else the quote it becomes."""
    table = np.zeros(0x2100, np.int32)
    for mark in _SPLIT_MARKS:
        table[ord(mark)] = 1
    for curly, straight in _QUOTE_MAP.items():
        table[curly] = straight
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
    mark of `_SPLIT_MARKS` (after quotes are unified) is a token of its own.
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
        h = np.uint32(2166136261)
        for i in range(starts[t], ends[t]):
            byte = np.uint32(buf[i])
            if byte >= 0x80:
                byte |= np.uint32(0xFFFFFF00)
            h = np.uint32((h ^ byte) * np.uint32(16777619))
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
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return Tokens(*_line_tokens(codes, _char_tables()[0], _mark_table()))


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
def _predict(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, hashes: np.ndarray,
             table: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, eos_id: int, eos_hash: np.uint32,
             word_ngrams: int, bucket: int, bucket_rows: np.ndarray, rows: np.ndarray, output: np.ndarray
             ) -> np.ndarray:
    """fastText's reported probability of each label (empty when no input row is known).

    As `Dictionary::getLine` + `addWordNgrams` + `Model::predict` with a softmax loss: the rows
    of the known words (then the end-of-line token, unless a literal "</s>" ended the line
    first), then of the word n-grams' buckets, in that
    order; their float32 mean; output scores; softmax; and fastText's exp(log(p + 1e-5)).
    """
    dim = rows.shape[1]
    hidden = np.zeros(dim, np.float32)
    word_hashes = np.empty(len(starts) + 1, np.int64)
    kept = used = 0
    for t in range(len(starts) + 1):
        if t < len(starts):
            start, end, h = starts[t], ends[t], hashes[t]
            if _is(buf, start, min(end, start + len(_LABEL_PREFIX)), _LABEL_PREFIX):
                continue  # "__label__..." is a label to fastText, never a word
            word = _find_word(buf, start, end, h, table, vocab, offsets)
        else:
            h, word = eos_hash, eos_id
        if word >= 0:
            for j in range(dim):
                hidden[j] += rows[word, j]
            used += 1
        word_hashes[kept] = np.int64(np.int32(h))  # fastText keeps them as int32
        kept += 1
        if t < len(starts) and _is(buf, start, end, _EOS_BYTES):
            break  # a literal "</s>" ends the line for fastText
    nwords = len(offsets) - 1
    for i in range(kept):
        h = np.uint64(word_hashes[i])
        for j in range(i + 1, min(kept, i + word_ngrams)):
            h = h * np.uint64(116049371) + np.uint64(word_hashes[j])
            row = bucket_rows[np.int64(h % np.uint64(bucket))]
            if row >= 0:
                for k in range(dim):
                    hidden[k] += rows[nwords + row, k]
                used += 1
    if used == 0:
        return np.zeros(0, np.float32)
    scale = np.float32(1.0 / used)
    for j in range(dim):
        hidden[j] *= scale
    scores = np.empty(output.shape[0], np.float32)
    for i in range(output.shape[0]):
        score = np.float32(0.0)
        for j in range(dim):
            score += output[i, j] * hidden[j]
        scores[i] = score
    top = scores.max()
    total = np.float32(0.0)
    for i in range(len(scores)):
        scores[i] = np.exp(scores[i] - top)
        total += scores[i]
    for i in range(len(scores)):
        scores[i] = np.exp(np.log(scores[i] / total + np.float32(1e-5)))
    return scores


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


@dataclass
class WordNgramModel:
    """A fastText supervised model without character n-grams and with a softmax loss."""

    labels: list[str]  # fastText labels in output order, "__label__" removed
    word_ngrams: int
    bucket: int
    table: np.ndarray  # open addressing by fastText hash -> word id (-1 empty)
    vocab: np.ndarray  # the words' UTF-8 bytes, concatenated
    offsets: np.ndarray  # word i is vocab[offsets[i]:offsets[i + 1]]
    eos_id: int
    bucket_rows: np.ndarray  # n-gram bucket -> row after the words (-1: pruned by quantization)
    rows: np.ndarray
    output: np.ndarray

    def probabilities(self, tokens: Tokens) -> np.ndarray:
        return _predict(tokens.buf, tokens.starts, tokens.ends, tokens.hashes, self.table, self.vocab,
                        self.offsets, self.eos_id, np.uint32(_fnv1a(_EOS)), self.word_ngrams, self.bucket,
                        self.bucket_rows, self.rows, self.output)


def read_word_ngram_model(path: Path) -> WordNgramModel | None:
    """The model at `path` if it is of the kind `_predict` computes, else None."""
    reader = _Reader(path.read_bytes())
    if len(reader.data) < 8 or reader.take("2i") != (_MAGIC, _VERSION):
        return None
    (_dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn,
     _lr_update_rate) = reader.take("12i")
    reader.take("d")
    if loss != _SOFTMAX or model != _SUPERVISED or minn > 0 or maxn > 0:
        return None
    size, nwords, _nlabels = reader.take("3i")
    _ntokens, pruned = reader.take("2q")
    words = []
    for _ in range(size):
        words.append(reader.word())
        reader.take("qb")
    pairs = reader.array(np.int32, 2 * max(pruned, 0)).reshape(-1, 2)
    quantized, = reader.take("?")
    rows = reader.quantized() if quantized else reader.dense()
    quantized_output, = reader.take("?")
    if quantized and quantized_output:
        return None
    output = reader.dense()
    if pruned < 0 and bucket > 0:  # not quantized: every bucket has its row
        bucket_rows = np.arange(bucket, dtype=np.int32)
    else:  # quantized with a cutoff: the kept buckets' rows (none when pruned == 0)
        bucket_rows = np.full(max(bucket, 1), -1, np.int32)
        bucket_rows[pairs[:, 0]] = pairs[:, 1]
    size_pow2 = 1 << max(2 * nwords, 2).bit_length()
    table = np.full(size_pow2, -1, np.int32)
    for word_id, word in enumerate(words[:nwords]):
        slot = _fnv1a(word) & (size_pow2 - 1)
        while table[slot] != -1:
            slot = (slot + 1) & (size_pow2 - 1)
        table[slot] = word_id
    lengths = np.array([len(w) for w in words[:nwords]], dtype=np.int64)
    return WordNgramModel(
        labels=[w.decode("utf-8").removeprefix("__label__") for w in words[nwords:]],
        word_ngrams=word_ngrams, bucket=max(bucket, 1), table=table,
        vocab=np.frombuffer(b"".join(words[:nwords]), dtype=np.uint8),
        offsets=np.concatenate(([0], np.cumsum(lengths))), eos_id=words.index(_EOS) if _EOS in words[:nwords] else -1,
        bucket_rows=bucket_rows, rows=np.ascontiguousarray(rows), output=np.ascontiguousarray(output))


class Classifier:
    """A fastText classifier by registry name or path: P(a Sieve label) of a document."""

    def __init__(self, name_or_path: str) -> None:
        self.spec: ModelSpec = spec_for(name_or_path)
        path = resolve_model(name_or_path)
        try:
            self.fast = read_word_ngram_model(path)
        except (ValueError, IndexError, struct.error):
            self.fast = None  # not a file this reader understands: the library decides
        self.library: Any = None
        if self.fast is None:
            import fasttext

            try:
                self.library = fasttext.load_model(str(path))
            except ValueError as exc:
                raise ModelError(f"model {name_or_path!r}: {path} is not a fastText model ({exc})") from exc

    def probability(self, text: str, positive: str, max_chars: int | None) -> float:
        """P(Sieve label `positive`) of `prepare_text(text, max_chars)`; 0.0 for text without
        words (nothing to classify)."""
        if self.fast is not None:
            tokens = document_tokens((text, max_chars))
            if not tokens.nonempty:
                return 0.0
            labels, probs = self.fast.labels, self.fast.probabilities(tokens)
        else:
            line = prepare_text(text, max_chars)
            if not line:
                return 0.0
            labels, probs = self._library_predict(line)
        for label, prob in zip(labels, probs):
            if self.spec.sieve_label(label) == positive:
                return min(max(float(prob), 0.0), 1.0)
        return 0.0

    def _library_predict(self, line: str) -> tuple[list[str], Any]:
        """All labels' probabilities (k=-1) so label order and top-1 do not matter; lone
        surrogates are replaced, not fatal."""
        try:
            return self.library.predict(line, k=-1)
        except (TypeError, ValueError, UnicodeEncodeError):
            return self.library.predict(line.encode("utf-8", "replace").decode("utf-8"), k=-1)


@lru_cache(maxsize=16)
def load_classifier(name_or_path: str) -> Classifier:
    """The classifier named `name_or_path`, loaded once per process."""
    return Classifier(name_or_path)
