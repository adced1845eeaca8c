"""Byte-level BPE: training by hand-checked example, specials, GPT-2 files, fast path == reference."""
from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.tokenizer import (Tokenizer, bytes_to_unicode, count_pretokens, train_bpe, train_bpe_from_counts,
                                train_bpe_from_texts)

EOT = "<|endoftext|>"
HANDOUT = "low low low low low lower lower widest widest widest newest newest newest newest newest newest"


def test_training_matches_hand_checked_merges(tmp_path):
    # Pair counts worked out by hand: 'es' and 'st' tie at 9 and the greater pair ('s','t') wins;
    # then 'e st'; 'lo'/'ow' tie at 7 -> 'o w', 'l ow'; five pairs tie at 6 -> 'w est', then 'n e'.
    path = tmp_path / "corpus.txt"
    path.write_text(HANDOUT)
    vocab, merges = train_bpe(path, 256 + 1 + 6, [EOT])
    assert merges == [(b"s", b"t"), (b"e", b"st"), (b"o", b"w"), (b"l", b"ow"), (b"w", b"est"), (b"n", b"e")]
    assert vocab[256] == EOT.encode() and vocab[257] == b"st" and len(vocab) == 263


def test_incremental_training_equals_full_recount(shared_data):
    text = (shared_data / "quality/wikitext-2/valid.txt").read_text()[:60_000]
    counts = count_pretokens(text, [EOT])
    _, merges = train_bpe_from_counts(counts, 600, [EOT])
    assert merges == _naive_merges(counts, 600 - 257)


def _naive_merges(counts, n):
    words = {tuple(bytes([b]) for b in w): c for w, c in counts.items()}
    merges = []
    for _ in range(n):
        pairs: dict = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def test_no_merge_crosses_a_special_token(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(("ab" + EOT) * 50 + "cd" * 3)
    vocab, merges = train_bpe(path, 300, [EOT])
    assert all(EOT.encode() not in a + b or a + b == EOT.encode() for a, b in merges)
    assert (b"b", b"<") not in merges


@pytest.fixture(scope="module")
def trained(shared_data) -> Tokenizer:
    text = (shared_data / "quality/wikitext-2/valid.txt").read_text()[:300_000]
    vocab, merges = train_bpe_from_texts([text], 1000, [EOT, EOT + EOT])
    return Tokenizer(vocab, merges, [EOT, EOT + EOT])


def test_special_tokens_never_split_longest_wins(trained):
    ids = trained.encode(f"Hello{EOT}{EOT}world{EOT}")
    assert ids.count(trained.special_ids[EOT + EOT]) == 1 and ids.count(trained.special_ids[EOT]) == 1
    assert trained.decode(ids) == f"Hello{EOT}{EOT}world{EOT}"
    assert trained.encode_fast(f"a{EOT}b") == trained.encode(f"a{EOT}b")


def test_roundtrip_multilingual_real_text(trained, shared_data):
    lines = (shared_data / "langid/tatoeba/tatoeba_long.tsv").read_text().splitlines()[1:]
    text = "\n".join(line.split("\t")[-1] for line in lines)
    assert trained.decode(trained.encode(text)) == text
    assert trained.encode_fast(text) == trained.encode(text)


def test_decode_replaces_invalid_utf8(trained):
    partial = list("é".encode())[:1]  # a lone lead byte
    assert trained.decode(partial) == "\ufffd"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fast_path_equals_reference_on_random_unicode(trained, text):
    assert trained.encode_fast(text) == trained.encode(text)
    assert trained.decode(trained.encode(text)) == text


def test_fast_path_equals_reference_on_real_text(trained, shared_data):
    import gzip

    docs = [json.loads(line)["text"] for line in
            gzip.open(shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")]
    for doc in docs[:200]:
        assert trained.encode_fast(doc) == trained.encode(doc)


def test_fast_path_bypassed_when_merges_repeat_a_string():
    vocab = {i: bytes([i]) for i in range(256)}
    merges = [(b"a", b"b"), (b"ab", b"c"), (b"b", b"c"), (b"a", b"bc")]  # b"abc" made twice
    for a, b in merges:
        vocab[len(vocab)] = a + b
    tok = Tokenizer(vocab, merges)
    assert not tok.fast_path_available()
    assert tok.encode_fast("abcabc") == tok.encode("abcabc")


def test_gpt2_format_files(tmp_path):
    table = bytes_to_unicode()
    space_t = table[ord(" ")] + "t"
    tokens = [table[b] for b in range(256)] + [space_t, "he", space_t + "he"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp_path / "merges.txt").write_text(f"#version: 0.2\n{table[ord(' ')]} t\nh e\n{space_t} he\n")
    tok = Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt", [EOT])
    assert tok.encode(" the") == [258]
    assert tok.encode(" then" + EOT) == [258, ord("n"), tok.special_ids[EOT]]
    tok.save(tmp_path / "saved")
    again = Tokenizer.from_files(tmp_path / "saved/vocab.json", tmp_path / "saved/merges.txt", [EOT])
    assert again.vocab == tok.vocab and again.merges == tok.merges


def test_encode_iterable_equals_encode_and_stays_flat(trained, tmp_path):
    line = "The quick brown fox  jumps over the lazy dog.\n\n  indented line\n" + EOT + "\n"
    text = line * 2000
    assert list(trained.encode_iterable(iter(text.splitlines(keepends=True)), buffer_chars=4096)) == trained.encode(text)

    def peak_while_encoding(lines: int) -> tuple[int, int]:
        path = tmp_path / f"big-{lines}.txt"
        with open(path, "w") as fh:
            for i in range(lines):
                fh.write(f"Line {i} of a long file, with some words to encode.\n")
        tracemalloc.start()
        count = 0
        with open(path) as fh:
            for _ in trained.encode_iterable(fh, buffer_chars=1 << 18):
                count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, peak

    small_count, small_peak = peak_while_encoding(40_000)
    big_count, big_peak = peak_while_encoding(160_000)
    assert big_count > 3.9 * small_count
    assert big_peak < 1.5 * small_peak  # 4x the input, about the same memory: it streams
