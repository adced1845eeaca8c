"""Tokenizer: training time / peak memory vs HuggingFace `tokenizers`, encode MB/s per core vs tiktoken."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.common import peak_mb, realweb_pages, run_measured
from filters.extract import html_to_text

EOT = "<|endoftext|>"

_OURS = """
import time, json
from pipeline.tokenizer import train_bpe
t = time.perf_counter()
vocab, merges = train_bpe({corpus!r}, {vocab}, ["<|endoftext|>"], num_workers=2)
seconds = time.perf_counter() - t
from pipeline.tokenizer import Tokenizer
Tokenizer(vocab, merges, ["<|endoftext|>"]).save({out!r})
print("SECONDS", seconds)
"""

_HF = """
import time, os
os.environ["TOKENIZERS_PARALLELISM"] = "true"
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size={vocab}, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
t = time.perf_counter()
tok.train([{corpus!r}], trainer)
seconds = time.perf_counter() - t
tok.save({out!r})
print("SECONDS", seconds)
"""


def _measure(code: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of a child process running `code` (its pool workers not included)."""
    out = run_measured(code)
    return float(out[out.index("SECONDS") + 1]), peak_mb(out)


def build_corpus(shared: Path, work: Path, target_mb: int) -> Path:
    """Text extracted from the realweb WARCs, documents separated by <|endoftext|>, repeated to size."""
    base = work / "realweb-text.txt"
    if not base.exists():
        texts = [t for _, html, charset in realweb_pages(shared) if (t := html_to_text(html, encoding=charset))]
        base.write_text(EOT.join(texts), encoding="utf-8")
    corpus = work / f"corpus-{target_mb}mb.txt"
    if not corpus.exists():
        data = base.read_bytes()
        with open(corpus, "wb") as fh:
            written = 0
            while written < target_mb * 2**20:
                fh.write(data + EOT.encode())
                written += len(data) + len(EOT)
    return corpus


def run(shared: Path, work: Path, quick: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    target_mb = 4 if quick else 100
    corpus = build_corpus(shared, work, target_mb)
    size_mb = corpus.stat().st_size / 2**20
    lines = ["## Tokenizer", "",
             f"Training corpus: text extracted from `bench/realweb-*.warc.gz` ({(work / 'realweb-text.txt').stat().st_size / 2**20:.1f} MB), "
             f"repeated to {size_mb:.0f} MB; GPT-2 pre-tokenization, special token `{EOT}`. Each trainer runs "
             "in a fresh process on the 2 cores (peak RSS of that process).", "",
             "| vocab | Sieve train s | HF tokenizers train s | ratio | Sieve peak MB | HF peak MB |", "|---:|---:|---:|---:|---:|---:|"]
    vocabs = [2000] if quick else [8192, 32768]
    for vocab in vocabs:
        ours_dir, hf_path = work / f"ours-{vocab}", work / f"hf-{vocab}.json"
        ours_s, ours_mb = _measure(_OURS.format(corpus=str(corpus), vocab=vocab, out=str(ours_dir)))
        hf_s, hf_mb = _measure(_HF.format(corpus=str(corpus), vocab=vocab, out=str(hf_path)))
        lines.append(f"| {vocab} | {ours_s:.1f} | {hf_s:.1f} | {ours_s / hf_s:.2f}x | {ours_mb:.0f} | {hf_mb:.0f} |")
    lines += ["", "Target: training within 2x of HF tokenizers.", ""]
    lines += _encode_section(work, vocabs[-1], quick)
    return "\n".join(lines) + "\n"


def _encode_section(work: Path, vocab: int, quick: bool) -> list[str]:
    import tiktoken
    from tokenizers import Tokenizer as HFTokenizer

    from pipeline.tokenizer import GPT2_PATTERN, Tokenizer

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    text = (work / "realweb-text.txt").read_text(encoding="utf-8")
    docs = [d for d in text.split(EOT) if d][: 200 if quick else 2000]
    mb = sum(len(d.encode()) for d in docs) / 2**20
    ours = Tokenizer.from_files(work / f"ours-{vocab}" / "vocab.json", work / f"ours-{vocab}" / "merges.txt", [EOT])
    special = {EOT.encode()}
    plain = tiktoken.Encoding(name="plain", pat_str=GPT2_PATTERN,
                              mergeable_ranks={t: i for i, t in ours.vocab.items() if t not in special}, special_tokens={})
    hf = HFTokenizer.from_file(str(work / f"hf-{vocab}.json"))

    def rate(fn, items) -> float:
        started = time.perf_counter()
        for d in items:
            fn(d)
        return sum(len(d.encode()) for d in items) / 2**20 / (time.perf_counter() - started)

    ours.encode_fast(docs[0])
    results = {
        "Sieve fast path (tiktoken core, our ranks, our special-token split)": rate(ours.encode_fast, docs),
        "tiktoken `encode_ordinary`, same ranks (its own speed)": rate(plain.encode_ordinary, docs),
        "HF tokenizers `encode` (its own BPE of the same size)": rate(lambda d: hf.encode(d), docs),
        "Sieve reference encoder (pure Python, cached pre-tokens)": rate(ours.encode, docs[: max(20, len(docs) // 10)]),
    }
    identical = all(ours.encode_fast(d) == ours.encode(d) for d in docs[:100])
    fast, tik = results["Sieve fast path (tiktoken core, our ranks, our special-token split)"], \
        results["tiktoken `encode_ordinary`, same ranks (its own speed)"]
    lines = [f"Encoding {len(docs)} real documents ({mb:.1f} MB), one thread, vocab {vocab}. tiktoken's GPT-2 "
             "ranks cannot be downloaded here, so tiktoken runs with our ranks (same merges, same regex): the "
             "comparison isolates Sieve's own overhead.", "",
             "| encoder | MB/s per core | ratio to tiktoken |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.2f} | {v / tik:.2f} |" for k, v in results.items()]
    lines += ["", f"Fast path = reference on the first 100 documents: {identical}. Fast path is "
              f"{fast / tik:.0%} of tiktoken's speed (target: within 10%)."]
    return lines


if __name__ == "__main__":
    print(run(Path(sys.argv[1]), Path("/tmp/bench-tok"), "--quick" in sys.argv))
