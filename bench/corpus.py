"""Synthetic corpora for dedup at scale: Sieve documents files with planted duplicates and their truth.

    python -m bench.corpus --docs N --mode text|signature --out DIR --files K --seed S
        [--exact-rate 0.05] [--near-rate 0.10] [--cluster-size 5] [--chain-rate 0.05] [--num-perm 128]

writes DIR/documents/part-00000.parquet ... (the columns the annotate stage writes: the base fields,
`minhash` (fixed-size list<uint32>[num_perm]), `text_hash` (uint64), `quality_score` (float64))
and DIR/truth.parquet (doc_id, cluster_id, kind, planted_jaccard, cluster_min_pairwise_jaccard).

Layout. A cluster is one `base` document plus planted copies: `exact` (the same text, other
doc_id / url) or `near`. `exact_rate` and `near_rate` are the shares of all documents that are planted
copies (not bases); every other document is `unique`. Cluster sizes are uniform in 2..cluster_size.
Near clusters get a target Jaccard band (`NEAR_BANDS`): 0.80-0.85 and 0.85-0.90 (pairs only: a base
and one copy), 0.90-0.95 and 0.95-1.0 (2..cluster_size members), plus `chain_rate` of the near clusters
made on purpose as chains (3 members, 0.80-0.87 to the base, so two copies are under 0.8 to each
other: the stage's chain guard may rightly keep two of them). Clusters occupy a contiguous logical
index range; the document at physical position p (file order) is logical (p - b) * a^-1 mod N, an
affine permutation, so the members of a cluster are scattered over all files.

Text mode: documents are real sentences (CC text from Dolma, WCXB main content, WikiText, all from
../shared/data) shuffled into new documents of 8-30 sentences in paragraphs of 2-5 (the shared data
holds a few thousand distinct documents, not 100k; new combinations of real sentences keep real word
statistics, and two documents share a sentence rarely, so unplanted Jaccard stays near 0). Near copies
are word edits of their base (replace / insert / delete single words) until the exact shingle Jaccard
lands in the cluster's band. Signatures and text hashes are computed with filters.dedup.MinHasher
exactly as the minhash filter does; the truth records the exact shingle Jaccard of every member to its
base and the minimum over all pairs of the cluster (filters.dedup.shingle_hashes + exact_jaccard).

Signature mode (10M+ documents on one disk, minutes to generate, one file in memory at a time): the text
is one short unique sentence per distinct document (equal within an exact cluster), the `text_hash` is
a hash of the distinct document's index (not text_hash(text)), and the signatures are synthetic:
a unique document or a base gets independent uniform uint32 values; a near copy of a base with planted
Jaccard J keeps each signature position of the base with probability J, else a fresh uniform value.
That is the MinHash model, P(signature values match) = J, so the stage sees what real MinHash of two
texts at Jaccard J would give it, estimator noise included. Two copies with J1 and J2 agree with
probability J1 * J2 (positions both kept): the recorded cluster_min_pairwise_jaccard is that model
value, min(J_i, J_i * J_j). Run the stage on these with dedup.near.verify_with: signature (there is
no text to check) and dedup.line.enabled: false. Every value is a function of (seed, logical index),
so files can be generated in any order and the result does not depend on --files.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filters.dedup import MinHasher, MinHashFilter, MinHashParams, exact_jaccard, shingle_hashes, text_hash
from filters.hashing import GOLDEN64, mix64
from pipeline.stages.annotate import BASE_FIELDS

KINDS = ("unique", "base", "exact", "near")
# (low, high, share of near clusters, largest size; 0 = cluster_size); the chain band comes last
NEAR_BANDS = [(0.80, 0.85, 0.10, 2), (0.85, 0.90, 0.15, 2), (0.90, 0.95, 0.25, 0), (0.95, 1.00, 0.50, 0)]
CHAIN_BAND = (0.80, 0.87, 3)
TRUTH_SCHEMA = pa.schema([("doc_id", pa.string()), ("cluster_id", pa.int64()), ("kind", pa.string()),
                          ("planted_jaccard", pa.float64()), ("cluster_min_pairwise_jaccard", pa.float64())])
_SALT_BASE, _SALT_FRESH, _SALT_KEEP, _SALT_Q, _SALT_TEXT, _SALT_J = range(1, 7)


# ---------------------------------------------------------------- counter-based randomness

def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        return mix64(x + GOLDEN64)


def _key(seed: int, salt: int) -> np.uint64:
    return _mix(np.array([seed * 16 + salt], dtype=np.uint64))[0]


def _hash(seed: int, salt: int, index: np.ndarray) -> np.ndarray:
    """uint64 hash of each index, a different function per (seed, salt)."""
    return _mix(index.astype(np.uint64) ^ _key(seed, salt))


def _uniform(seed: int, salt: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float64 per index."""
    return (_hash(seed, salt, index) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _signature_values(seed: int, salt: int, index: np.ndarray, num_perm: int) -> np.ndarray:
    """(n, num_perm) uint64 hashes, one per (index, position)."""
    flat = index.astype(np.uint64)[:, None] * np.uint64(num_perm) + np.arange(num_perm, dtype=np.uint64)
    return _mix(flat ^ _key(seed, salt))


# ---------------------------------------------------------------- the plan (clusters and layout)

@dataclass
class Plan:
    """Clusters in logical index order: cluster c is logical [start[c], start[c] + size[c]), its base
    first; logical indices from `planted` on are unique documents."""

    docs: int
    seed: int
    start: np.ndarray
    size: np.ndarray
    near: np.ndarray  # bool per cluster: near (else exact)
    low: np.ndarray   # Jaccard band per cluster (near clusters)
    high: np.ndarray
    multiplier: int   # physical p <-> logical l: p = (a * l + b) mod N
    offset: int

    @property
    def planted(self) -> int:
        return int(self.start[-1] + self.size[-1]) if len(self.start) else 0

    def logical(self, physical: np.ndarray) -> np.ndarray:
        inverse = pow(self.multiplier, -1, self.docs)
        return ((physical - self.offset) % self.docs * inverse) % self.docs

    def locate(self, logical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster or -1, offset in the cluster: 0 = base) of each logical index."""
        cluster = np.searchsorted(self.start, logical, side="right") - 1
        inside = (logical < self.planted) & (cluster >= 0)
        cluster = np.where(inside, cluster, -1)
        return cluster, np.where(inside, logical - self.start[np.maximum(cluster, 0)], 0)

    def kinds(self, cluster: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Index into KINDS per document."""
        copy_kind = np.where(self.near[np.maximum(cluster, 0)], 3, 2)
        return np.where(cluster < 0, 0, np.where(offset == 0, 1, copy_kind)).astype(np.int8)

    def target_jaccard(self, logical: np.ndarray, cluster: np.ndarray) -> np.ndarray:
        """Planted Jaccard of near copies: uniform in their cluster's band (a function of the seed)."""
        c = np.maximum(cluster, 0)
        return self.low[c] + (self.high[c] - self.low[c]) * _uniform(self.seed, _SALT_J, logical)


def make_plan(docs: int, seed: int, exact_rate: float, near_rate: float, cluster_size: int,
              chain_rate: float) -> Plan:
    if docs < 1 or cluster_size < 2 or not 0 <= exact_rate + near_rate < 1:
        raise ValueError("need docs >= 1, cluster_size >= 2 and exact_rate + near_rate < 1")
    rng = np.random.default_rng(seed)
    bands = [(lo, hi, share * (1 - chain_rate), mx or cluster_size) for lo, hi, share, mx in NEAR_BANDS]
    bands.append((CHAIN_BAND[0], CHAIN_BAND[1], chain_rate, CHAIN_BAND[2]))
    shares = np.array([b[2] for b in bands])
    sizes, near, low, high = [], [], [], []
    for is_near, copies_wanted in ((False, int(exact_rate * docs)), (True, int(near_rate * docs))):
        copies = 0
        while copies < copies_wanted:
            # draw a block of clusters at once, then cut where the copies reach the target
            n = max(16, (copies_wanted - copies) // 2)
            band = rng.choice(len(bands), n, p=shares / shares.sum()) if is_near else np.zeros(n, np.int64)
            largest = np.array([bands[b][3] for b in band]) if is_near else np.full(n, cluster_size)
            if is_near:
                chain = band == len(bands) - 1
                s = np.where(chain, CHAIN_BAND[2], 2 + (rng.random(n) * (largest - 1)).astype(np.int64))
            else:
                s = 2 + (rng.random(n) * (cluster_size - 1)).astype(np.int64)
            cum = copies + np.cumsum(s - 1)
            take = min(len(cum), int(np.searchsorted(cum, copies_wanted)) + 1)  # the block may fall short
            s, band = s[:take], band[:take]
            sizes.append(s)
            near.append(np.full(len(s), is_near))
            low.append(np.array([bands[b][0] for b in band]) if is_near else np.ones(len(s)))
            high.append(np.array([bands[b][1] for b in band]) if is_near else np.ones(len(s)))
            copies = int(cum[take - 1])
    size = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    if size.sum() > docs:
        raise ValueError(f"{docs} documents cannot hold the planted clusters ({size.sum()} documents)")
    start = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
    multiplier = int(docs * 0.6180339887) | 1
    while np.gcd(multiplier, docs) != 1:
        multiplier += 2
    return Plan(docs, seed, start, size.astype(np.int64), np.concatenate(near) if near else np.zeros(0, bool),
                np.concatenate(low) if low else np.zeros(0), np.concatenate(high) if high else np.zeros(0),
                multiplier % docs if docs > 1 else 1, int(rng.integers(docs)))


def file_bounds(docs: int, files: int) -> np.ndarray:
    return np.linspace(0, docs, min(files, docs) + 1).astype(np.int64)


# ---------------------------------------------------------------- writing

def documents_schema(num_perm: int) -> pa.Schema:
    f = MinHashFilter({"num_perm": num_perm})
    return pa.schema(list(BASE_FIELDS) + f.signal_schema() + [pa.field("quality_score", pa.float64())])


def _documents_table(physical: np.ndarray, file_index: int, texts: list[str], signatures: np.ndarray,
                     hashes: np.ndarray, quality: np.ndarray, num_perm: int) -> pa.Table:
    n = len(physical)
    doc_id = pa.array([f"doc-{p:010d}" for p in physical.tolist()], pa.string())
    warc = f"bench-{file_index:05d}.warc.gz"
    minhash = pa.FixedSizeListArray.from_arrays(pa.array(signatures.reshape(-1).astype(np.uint32)), num_perm)
    return pa.table({
        "doc_id": doc_id, "url": pa.array([f"https://site{p % 50021}.example/page/{p}" for p in physical.tolist()]),
        "warc_file": pa.array([warc] * n), "warc_record_id": doc_id, "warc_date": pa.array(["2026-01-01T00:00:00Z"] * n),
        "content_type": pa.array(["text/html"] * n), "text": pa.array(texts, pa.string()),
        "extract_fallback": pa.array(np.zeros(n, bool)), "minhash": minhash,
        "text_hash": pa.array(hashes.astype(np.uint64)), "quality_score": pa.array(quality.astype(np.float64)),
    }, schema=documents_schema(num_perm))


def _truth_table(physical: np.ndarray, cluster: np.ndarray, kind: np.ndarray, planted: np.ndarray,
                 min_pairwise: np.ndarray) -> pa.Table:
    none = cluster < 0
    return pa.table({
        "doc_id": pa.array([f"doc-{p:010d}" for p in physical.tolist()], pa.string()),
        "cluster_id": pa.array(cluster, mask=none, type=pa.int64()),
        "kind": pa.array(np.array(KINDS)[kind]),
        "planted_jaccard": pa.array(planted, mask=none, type=pa.float64()),
        "cluster_min_pairwise_jaccard": pa.array(min_pairwise, mask=none, type=pa.float64()),
    }, schema=TRUTH_SCHEMA)


class _Writer:
    """documents/part-*.parquet and truth.parquet, written file by file."""

    def __init__(self, out: Path, num_perm: int) -> None:
        self.out, self.num_perm = out, num_perm
        (out / "documents").mkdir(parents=True, exist_ok=True)
        for stale in (out / "documents").glob("*.parquet"):
            stale.unlink()
        self.truth = pq.ParquetWriter(out / "truth.parquet.tmp", TRUTH_SCHEMA)

    def write(self, file_index: int, documents: pa.Table, truth: pa.Table) -> None:
        pq.write_table(documents, self.out / "documents" / f"part-{file_index:05d}.parquet", row_group_size=16384)
        self.truth.write_table(truth)

    def close(self, info: dict) -> None:
        self.truth.close()
        (self.out / "truth.parquet.tmp").rename(self.out / "truth.parquet")
        (self.out / "corpus.json").write_text(json.dumps(info, indent=1))


# ---------------------------------------------------------------- signature mode

def _cluster_min_pairwise_model(plan: Plan) -> np.ndarray:
    """Per cluster: min over member pairs of the model Jaccard (J_i to the base, J_i * J_j between
    copies); 1.0 for exact clusters."""
    out = np.ones(len(plan.start))
    near = np.flatnonzero(plan.near)
    if not len(near):
        return out
    counts = plan.size[near] - 1
    cluster = np.repeat(near, counts)
    first = np.repeat(plan.start[near] + 1, counts)
    logical = first + np.arange(len(cluster)) - np.repeat(np.cumsum(counts) - counts, counts)
    j = plan.target_jaccard(logical, cluster)
    order = np.lexsort((j, cluster))
    j_sorted, c_sorted = j[order], cluster[order]
    starts = np.flatnonzero(np.concatenate(([True], c_sorted[1:] != c_sorted[:-1])))
    smallest = j_sorted[starts]
    has_two = counts[np.searchsorted(near, c_sorted[starts])] >= 2
    second = np.where(has_two, j_sorted[np.minimum(starts + 1, len(j_sorted) - 1)], 1.0)
    out[c_sorted[starts]] = np.minimum(smallest, smallest * second)
    return out


def signature_file(plan: Plan, lo: int, hi: int, num_perm: int) -> tuple[np.ndarray, ...]:
    """(physical, logical, cluster, offset, kind, planted J, signatures, text hash, distinct id) for
    the documents at physical positions lo..hi."""
    physical = np.arange(lo, hi, dtype=np.int64)
    logical = plan.logical(physical)
    cluster, offset = plan.locate(logical)
    kind = plan.kinds(cluster, offset)
    base = np.where(cluster >= 0, plan.start[np.maximum(cluster, 0)], logical)
    near = kind == 3
    distinct = np.where(near, logical, base)  # near copies are documents of their own
    signatures = _signature_values(plan.seed, _SALT_BASE, base, num_perm) >> np.uint64(32)
    planted = np.where(kind == 0, np.nan, 1.0)
    if near.any():
        j = plan.target_jaccard(logical[near], cluster[near])
        planted[near] = j
        fresh = _signature_values(plan.seed, _SALT_FRESH, logical[near], num_perm) >> np.uint64(32)
        keep = (_signature_values(plan.seed, _SALT_KEEP, logical[near], num_perm) >> np.uint64(11)).astype(
            np.float64) / float(1 << 53) < j[:, None]
        signatures[near] = np.where(keep, signatures[near], fresh)
    hashes = _hash(plan.seed, _SALT_TEXT, distinct)
    return physical, logical, cluster, offset, kind, planted, signatures.astype(np.uint32), hashes, distinct


def generate_signature(plan: Plan, out: Path, files: int, num_perm: int, log=None) -> None:
    writer = _Writer(out, num_perm)
    min_pairwise = _cluster_min_pairwise_model(plan)
    bounds = file_bounds(plan.docs, files)
    for f in range(len(bounds) - 1):
        physical, logical, cluster, _, kind, planted, sigs, hashes, distinct = signature_file(
            plan, int(bounds[f]), int(bounds[f + 1]), num_perm)
        texts = [f"Scale bench record {d}, a signature-only synthetic document." for d in distinct.tolist()]
        quality = _uniform(plan.seed, _SALT_Q, logical)
        writer.write(f, _documents_table(physical, f, texts, sigs, hashes, quality, num_perm),
                     _truth_table(physical, cluster, kind, planted, min_pairwise[np.maximum(cluster, 0)]))
        if log:
            log(f"file {f + 1}/{len(bounds) - 1}")
    writer.close(_info(plan, "signature", files, num_perm))


# ---------------------------------------------------------------- text mode

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def real_sentences(shared: Path, min_words: int = 8, max_words: int = 60) -> list[str]:
    """Distinct (by normalized text) sentences of the real texts in ../shared/data."""
    texts = []
    for path in sorted((shared / "quality" / "dolma-cc-text").glob("*.jsonl.gz")):
        texts += [json.loads(line)["text"] for line in gzip.open(path, "rt", errors="surrogateescape")]
    for path in sorted((shared / "html" / "wcxb-dev" / "ground-truth").glob("*.json")):
        texts.append(json.loads(path.read_text()).get("ground_truth", {}).get("main_content") or "")
    for name in ("test.txt", "valid.txt"):
        wiki = shared / "quality" / "wikitext-2" / name
        if wiki.exists():
            texts += [line for line in wiki.read_text().splitlines() if not line.strip().startswith("=")]
    seen: set[int] = set()
    out = []
    for text in texts:
        for sentence in _SENTENCE_END.split(text.replace("\n", " ")):
            sentence = " ".join(sentence.split())
            if min_words <= len(sentence.split(" ")) <= max_words and (h := text_hash(sentence)) not in seen:
                seen.add(h)
                out.append(sentence)
    if not out:
        raise ValueError(f"no sentences found under {shared}")
    return out


def collage(sentences: list[str], rng: random.Random) -> str:
    """A new document: 8-30 real sentences in paragraphs of 2-5."""
    chosen = rng.sample(sentences, rng.randint(8, 30))
    paragraphs, i = [], 0
    while i < len(chosen):
        k = rng.randint(2, 5)
        paragraphs.append(" ".join(chosen[i: i + k]))
        i += k
    return "\n".join(paragraphs)


def edit_words(text: str, edits: int, vocabulary: list[str], rng: random.Random) -> str:
    """`edits` single-word edits (replace, insert or delete) at random places, lines kept."""
    lines = [line.split(" ") for line in text.split("\n")]
    for _ in range(edits):
        i = rng.randrange(len(lines))
        words = lines[i]
        j = rng.randrange(len(words))
        op = rng.random()
        if op < 0.5:
            words[j] = rng.choice(vocabulary)
        elif op < 0.75 or len(words) < 3:
            words.insert(j, rng.choice(vocabulary))
        else:
            del words[j]
    return "\n".join(" ".join(words) for words in lines)


def near_copy(base: str, base_set: np.ndarray, low: float, high: float, target: float, vocabulary: list[str],
              rng: random.Random, ngram: int, taken: set[int]) -> tuple[str, np.ndarray, float]:
    """A word-edited copy whose exact shingle Jaccard to `base` is in [low, high) when a few tries
    find one (else the closest found, still below 1): (text, shingle set, Jaccard). Its normalized
    text differs from every text hash in `taken` (the cluster so far), which it joins: a near copy is
    never an exact duplicate (an edit can touch only punctuation, which normalization drops)."""
    words = len(base.split())
    edits = max(1, round(words * (1 - target) / (ngram * (1 + target))))
    best = None
    for attempt in range(60):
        text = edit_words(base, edits, vocabulary, rng)
        s = shingle_hashes(text, ngram)
        j = exact_jaccard(base_set, s)
        digest = text_hash(text)
        if j < 1 and digest not in taken:
            if best is None or abs(j - target) < abs(best[2] - target):
                best = (text, s, j, digest)
            if low <= j < high or (attempt >= 12 and best is not None):
                break
        edits = max(1, edits + (1 if j >= high else -1) * max(1, edits // 4))
    if best is None:
        raise RuntimeError("no distinct near copy found in 60 tries")
    taken.add(best[3])
    return best[:3]


def generate_text(plan: Plan, out: Path, files: int, shared: Path, num_perm: int, log=None) -> None:
    params = MinHashParams(num_perm=num_perm)
    hasher = MinHasher(params.num_perm, params.seed, params.ngram, params.scheme)
    sentences = real_sentences(shared)
    vocabulary = sorted({w for s in sentences[:5000] for w in s.split(" ") if w.isalpha()})
    rng = random.Random(plan.seed)
    n = plan.docs
    texts: list[str | None] = [None] * n
    planted = np.full(n, np.nan)
    min_pairwise = np.ones(len(plan.start))
    for c in range(len(plan.start)):
        first, size = int(plan.start[c]), int(plan.size[c])
        base = collage(sentences, rng)
        texts[first], planted[first] = base, 1.0
        if not plan.near[c]:
            for k in range(1, size):
                texts[first + k], planted[first + k] = base, 1.0
            continue
        base_set = shingle_hashes(base, params.ngram)
        sets, taken = [base_set], {text_hash(base)}
        targets = plan.target_jaccard(np.arange(first + 1, first + size), np.full(size - 1, c))
        for k, target in enumerate(targets, 1):
            text, s, j = near_copy(base, base_set, plan.low[c], plan.high[c], float(target), vocabulary, rng,
                                   params.ngram, taken)
            texts[first + k], planted[first + k] = text, j
            sets.append(s)
        min_pairwise[c] = min(exact_jaccard(a, b) for i, a in enumerate(sets) for b in sets[i + 1:])
    for i in range(plan.planted, n):
        texts[i] = collage(sentences, rng)
    writer = _Writer(out, num_perm)
    bounds = file_bounds(n, files)
    for f in range(len(bounds) - 1):
        physical = np.arange(bounds[f], bounds[f + 1], dtype=np.int64)
        logical = plan.logical(physical)
        cluster, offset = plan.locate(logical)
        kind = plan.kinds(cluster, offset)
        file_texts = [texts[i] for i in logical.tolist()]
        both = [hasher.signature_and_text_hash(t) for t in file_texts]
        signatures = np.stack([s for s, _ in both]) if both else np.zeros((0, num_perm), np.uint32)
        hashes = np.array([h for _, h in both], dtype=np.uint64)
        quality = _uniform(plan.seed, _SALT_Q, logical)
        writer.write(f, _documents_table(physical, f, file_texts, signatures, hashes, quality, num_perm),
                     _truth_table(physical, cluster, kind, planted[logical], min_pairwise[np.maximum(cluster, 0)]))
        if log:
            log(f"file {f + 1}/{len(bounds) - 1}")
    writer.close(_info(plan, "text", files, num_perm))


def _info(plan: Plan, mode: str, files: int, num_perm: int) -> dict:
    near = plan.near
    return {"mode": mode, "docs": plan.docs, "files": files, "seed": plan.seed, "num_perm": num_perm,
            "clusters": int(len(plan.start)), "exact_clusters": int((~near).sum()), "near_clusters": int(near.sum()),
            "exact_copies": int((plan.size[~near] - 1).sum()), "near_copies": int((plan.size[near] - 1).sum())}


def generate(docs: int, mode: str, out: Path | str, files: int, seed: int = 0, *, exact_rate: float = 0.05,
             near_rate: float = 0.10, cluster_size: int = 5, chain_rate: float = 0.05, num_perm: int = 128,
             shared: Path | str | None = None, log=None) -> Plan:
    """Write a corpus (see the module docstring) and return its plan."""
    plan = make_plan(docs, seed, exact_rate, near_rate, cluster_size, chain_rate)
    out = Path(out)
    if mode == "signature":
        generate_signature(plan, out, files, num_perm, log)
    elif mode == "text":
        if shared is None:
            raise ValueError("text mode needs the shared data directory")
        generate_text(plan, out, files, Path(shared), num_perm, log)
    else:
        raise ValueError(f"mode must be text or signature, got {mode!r}")
    return plan


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, required=True)
    parser.add_argument("--mode", choices=["text", "signature"], default="signature")
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact-rate", type=float, default=0.05, help="share of documents that are exact copies")
    parser.add_argument("--near-rate", type=float, default=0.10, help="share of documents that are near copies")
    parser.add_argument("--cluster-size", type=int, default=5, help="largest cluster (sizes uniform in 2..this)")
    parser.add_argument("--chain-rate", type=float, default=0.05, help="share of near clusters planted as chains")
    parser.add_argument("--num-perm", type=int, default=MinHashParams().num_perm)
    parser.add_argument("--shared", default=os.environ.get("SIEVE_SHARED_DATA",
                                                           str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = parser.parse_args(argv)
    started = time.time()
    generate(args.docs, args.mode, args.out, args.files, args.seed, exact_rate=args.exact_rate,
             near_rate=args.near_rate, cluster_size=args.cluster_size, chain_rate=args.chain_rate,
             num_perm=args.num_perm, shared=args.shared,
             log=lambda m: print(f"[corpus] {m} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True))
    print(f"[corpus] wrote {args.out} in {time.time() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
