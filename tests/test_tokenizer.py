"""Byte-level BPE: training by hand-checked example and against a naive recount, file chunking,
special tokens (ordinary text unless allowed, in training and every encoder), GPT-2 files, the
fast path against the reference, streaming encode."""
from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.tokens.tokenizer import (
    Tokenizer,
    bytes_to_unicode,
    count_file_pretokens,
    count_pretokens,
    train_bpe,
    train_bpe_from_counts,
    train_bpe_from_texts,
    unicode_disagreements,
)

EOT = "<|endoftext|>"
SPECIALS = [EOT, EOT + EOT, "<|im_start|>", "<s>"]
# Every special token of SPECIALS and the near forms a page about language models holds.
SPECIAL_FORMS = SPECIALS + ["<|endoftext|", "|endoftext|>", "<|endoftext", "<<|endoftext|>>", "<|EndOfText|>",
                            EOT * 3, f" {EOT} ", f"\n{EOT}\n", f"x{EOT}y", "<|im_start|>user\n", "</s>"]
HANDOUT = "low low low low low lower lower widest widest widest newest newest newest newest newest newest"


def _synthetic_text(seed: int, words: int) -> str:
    """Multilingual, multi-script text with numbers, punctuation, contractions and odd spacing."""
    rng = random.Random(seed)
    vocab = ["the", "cat", "isn't", "running", "über", "straße", "Москва", "город", "東京", "日本語",
             "مرحبا", "שלום", "🙂", "2024", "3.14", "--", "...", "e-mail", "naïve", "façade", "we'll"]
    seps = [" ", " ", " ", "  ", "\n", "\n\n", "\t", ", ", ". "]
    return "".join(rng.choice(vocab) + rng.choice(seps) for _ in range(words))


def _naive_merges(counts: Counter[bytes], n: int) -> list[tuple[bytes, bytes]]:
    """Merges by full recount after every merge (the definition the fast trainer must match)."""
    words = {tuple(bytes([b]) for b in w): c for w, c in counts.items()}
    merges = []
    for _ in range(n):
        pairs: Counter = Counter()
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new: Counter = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return merges


# ---------------------------------------------------------------- training

def test_training_matches_hand_checked_merges(tmp_path):
    # Pair counts worked out by hand: 'es' and 'st' tie at 9 and the greater pair ('s','t') wins;
    # then 'e st'; 'lo'/'ow' tie at 7 -> 'o w', 'l ow'; five pairs tie at 6 -> 'w est', then 'n e'.
    path = tmp_path / "corpus.txt"
    path.write_text(HANDOUT)
    vocab, merges = train_bpe(path, 256 + 1 + 6, [EOT])
    assert merges == [(b"s", b"t"), (b"e", b"st"), (b"o", b"w"), (b"l", b"ow"), (b"w", b"est"), (b"n", b"e")]
    assert vocab[256] == EOT.encode() and vocab[257] == b"st" and vocab[262] == b"ne" and len(vocab) == 263


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="aab c", min_size=1, max_size=12), min_size=1, max_size=12), st.integers(1, 20))
def test_incremental_merges_equal_full_recount_on_repetitive_words(words, merges):
    # Runs like 'aaaa' exercise overlapping merge sites, where incremental updates are easy to get wrong.
    counts = count_pretokens(" ".join(words), [])
    assert train_bpe_from_counts(counts, 256 + merges, [])[1] == _naive_merges(counts, merges)


def test_incremental_merges_equal_full_recount_on_text():
    counts = count_pretokens(_synthetic_text(0, 3000), [EOT])
    assert train_bpe_from_counts(counts, 700, [EOT])[1] == _naive_merges(counts, 700 - 257)


def test_incremental_merges_equal_full_recount_on_real_text(shared_data):
    text = (shared_data / "quality/wikitext-2/valid.txt").read_text()[:60_000]
    counts = count_pretokens(text, [EOT])
    assert train_bpe_from_counts(counts, 600, [EOT])[1] == _naive_merges(counts, 600 - 257)


@pytest.mark.parametrize("specials", [[EOT], [], ["<s>", "<s> x"]])
def test_parallel_chunked_counts_equal_whole_text_counts(tmp_path, specials):
    # Small chunks force many cuts: at special tokens, or at a space after a word when there are none.
    docs = [_synthetic_text(i, 400) for i in range(12)]
    text = (specials[0] if specials else "  \n").join(docs) + "".join(specials)
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    chunked = count_file_pretokens(path, specials, num_workers=2, chunk_bytes=2_000)
    assert chunked == count_pretokens(text, specials)


def test_documents_are_trained_on_as_encoded_special_strings_included():
    # A page's `<|endoftext|>` is its own text: training counts it as encode() pre-tokenizes it
    # ('<|', 'endoftext', '|>'), so the merges learn it and it costs few tokens; counted apart
    # (split out) it would stay 13 single bytes.
    docs = [_synthetic_text(i, 300).replace(" the ", f" the {EOT} ") for i in range(20)]
    vocab, merges = train_bpe_from_texts(docs, 700, [EOT])
    counts = Counter()
    for doc in docs:
        counts.update(count_pretokens(doc, []))
    assert merges == train_bpe_from_counts(counts, 700, [EOT])[1]
    tok = Tokenizer(vocab, merges, [EOT])
    assert (b"<", b"|") in merges and len(tok.encode(EOT)) <= 3
    assert tok.special_ids[EOT] not in tok.encode_fast(docs[0]) and tok.decode(tok.encode_fast(docs[0])) == docs[0]


def test_no_merge_spells_a_special_token():
    # "ab" as a special token: the frequent pair (a, b) is never merged, so the bytes "ab" keep one id
    # (the special one) and ordinary text can never produce it.
    vocab, merges = train_bpe_from_texts(["ab abab cab " * 50], 270, ["ab"])
    assert merges and all(a + b != b"ab" for a, b in merges)
    assert len(set(vocab.values())) == len(vocab)  # no byte string has two ids
    tok = Tokenizer(vocab, merges, ["ab"])
    assert tok.special_ids["ab"] not in tok.encode("cab ab") and tok.decode(tok.encode("cab ab")) == "cab ab"
    assert tok.encode("cab ab", allowed_special="all") == [*tok.encode("c"), 256, *tok.encode(" "), 256]


def test_vocab_whose_merge_spells_a_special_token_is_refused():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab"}
    with pytest.raises(ValueError, match="special token 'ab'"):
        Tokenizer(vocab, [(b"a", b"b")], ["ab"])
    with pytest.raises(ValueError, match="single byte"):
        Tokenizer(vocab, [], ["a"])


def test_no_merge_crosses_a_special_token(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(("ab" + EOT) * 50 + "cd" * 3)
    vocab, merges = train_bpe(path, 300, [EOT])
    assert all(b"<" not in a + b for a, b in merges)  # '<|' only ever occurs inside the special token
    assert vocab[256] == EOT.encode() and (b"a", b"b") in merges


# ---------------------------------------------------------------- encoding

@pytest.fixture(scope="module")
def synthetic() -> Tokenizer:
    vocab, merges = train_bpe_from_texts([_synthetic_text(1, 20_000)], 600, [EOT, EOT + EOT])
    return Tokenizer(vocab, merges, [EOT, EOT + EOT])


@pytest.fixture(scope="module")
def with_specials() -> Tokenizer:
    """Trained on documents that hold the special strings as text (pages about language models)."""
    docs = [_synthetic_text(i, 400) + " " + SPECIAL_FORMS[i % len(SPECIAL_FORMS)] for i in range(40)]
    vocab, merges = train_bpe_from_texts(docs, 800, SPECIALS)
    return Tokenizer(vocab, merges, SPECIALS)


@pytest.fixture(scope="module")
def trained(shared_data) -> Tokenizer:
    text = (shared_data / "quality/wikitext-2/valid.txt").read_text()[:300_000]
    vocab, merges = train_bpe_from_texts([text], 1000, [EOT, EOT + EOT])
    return Tokenizer(vocab, merges, [EOT, EOT + EOT])


def _injected(text: str, form: str, rng: random.Random) -> list[str]:
    """`form` at the start, the end, after a space and inside a word of `text`."""
    spaces = [i for i, c in enumerate(text) if c == " "] or [len(text) // 2]
    inside = rng.randrange(len(text) + 1)
    after = rng.choice(spaces) + 1
    return [form + text, text + form, text[:after] + form + text[after:], text[:inside] + form + text[inside:], form]


def _assert_ordinary_text(tok: Tokenizer, texts: list[str]) -> None:
    """Every encoder gives ordinary ids (no special id) that decode back to the text."""
    special = set(tok.special_ids.values())
    for text in texts:
        ids = tok.encode(text)
        assert not special & set(ids), text
        assert tok.decode(ids) == text
        assert tok.encode_fast(text) == ids
        assert list(tok.encode_iterable([text[i:i + 7] for i in range(0, len(text), 7)], buffer_chars=64)) == ids


@pytest.mark.parametrize("form", SPECIAL_FORMS)
def test_special_strings_in_text_are_ordinary_text(with_specials, form):
    rng = random.Random(form)
    _assert_ordinary_text(with_specials, _injected(_synthetic_text(rng.randrange(100), 200), form, rng))


def test_special_strings_in_real_pages_are_ordinary_text(with_specials, shared_data):
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        pages = [json.loads(line)["text"] for line in fh][:60]
    rng = random.Random(0)
    for i, page in enumerate(pages):
        _assert_ordinary_text(with_specials, _injected(page, SPECIAL_FORMS[i % len(SPECIAL_FORMS)], rng))


def test_allowed_special_all_matches_longest_first(synthetic):
    text = f"Hello{EOT}{EOT}world{EOT}"
    ids = synthetic.encode(text, allowed_special="all")
    assert ids.count(synthetic.special_ids[EOT + EOT]) == 1 and ids.count(synthetic.special_ids[EOT]) == 1
    assert synthetic.decode(ids) == text
    assert synthetic.encode_fast(text, allowed_special="all") == ids
    assert synthetic.encode("<|endoftext", allowed_special="all") == synthetic.encode("<|endoftext")  # plain text
    assert not set(synthetic.special_ids.values()) & set(synthetic.encode(text))  # default: none allowed


def test_allowed_special_subset_leaves_the_others_as_text(synthetic):
    text = f"a {EOT}{EOT} b {EOT}"
    ids = synthetic.encode(text, allowed_special={EOT})
    assert ids.count(synthetic.special_ids[EOT]) == 3 and synthetic.special_ids[EOT + EOT] not in ids
    assert ids == synthetic.encode_fast(text, allowed_special=[EOT]) == synthetic.encode(text, allowed_special=(EOT,))
    assert synthetic.encode(text, allowed_special=set()) == synthetic.encode(text)
    assert synthetic.decode(ids) == text
    with pytest.raises(ValueError, match=r"\['<pad>'\] are not special tokens"):
        synthetic.encode(text, allowed_special={EOT, "<pad>"})
    with pytest.raises(ValueError, match="'all' or a set"):
        synthetic.encode_fast(text, allowed_special=EOT)


def test_decode_replaces_invalid_utf8(synthetic):
    lead = "é".encode()[0]  # a lone lead byte
    assert synthetic.decode([lead, ord("a")]) == "\ufffda"


def test_trained_vocab_passes_the_fast_path_checks(synthetic):
    assert synthetic.fast_path_available()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fast_path_equals_reference_on_random_unicode(synthetic, text):
    assert synthetic.encode_fast(text) == synthetic.encode(text)
    assert synthetic.decode(synthetic.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "ab", " ", "\n", EOT, EOT + EOT, "<|", "|>", "é", "'s", "1", "<s>"]),
                max_size=40),
       st.sampled_from([(), "all", {EOT}, {EOT + EOT, "<s>"}]))
def test_fast_path_equals_reference_around_special_tokens(with_specials, parts, allowed):
    text = "".join(parts)
    ids = with_specials.encode(text, allowed_special=allowed)
    assert with_specials.encode_fast(text, allowed_special=allowed) == ids
    assert with_specials.decode(ids) == text


def test_lone_surrogates_go_to_the_reference(synthetic):
    text = "ab\ud800cd \udfff"
    assert synthetic.encode_fast(text) == synthetic.encode(text)
    assert synthetic.decode(synthetic.encode(text)) == "ab\ufffd\ufffd\ufffdcd \ufffd\ufffd\ufffd"


def test_characters_tiktoken_classifies_differently_go_to_the_reference():
    # tiktoken's Rust regex and the `regex` module ship different Unicode versions: a character that
    # only one of them calls a letter changes the pre-tokens, so encode_fast must not use tiktoken.
    table = unicode_disagreements()
    import regex

    letters = [chr(c) for c in map(int, table.nonzero()[0]) if not 0xD800 <= c < 0xE000 and regex.match(r"\p{L}", chr(c))]
    if not letters:
        pytest.skip("tiktoken and regex agree on every letter in these versions")
    corpus = " ".join(f"ab{c}cd" for c in letters[:5] * 40)
    vocab, merges = train_bpe_from_texts([corpus], 300, [])
    tok = Tokenizer(vocab, merges)
    text = f"x ab{letters[0]}cd y"
    assert tok.tiktoken_encoding().encode_ordinary(text) != tok.encode(text)  # the raw fast path would be wrong
    assert tok.encode_fast(text) == tok.encode(text) and tok.reference_fallbacks == 1
    assert not table[:128].any()  # ASCII is never affected: ASCII text always takes the fast path


def test_fast_path_bypassed_when_merges_repeat_a_string():
    vocab = {i: bytes([i]) for i in range(256)}
    merges = [(b"a", b"b"), (b"ab", b"c"), (b"b", b"c"), (b"a", b"bc")]  # b"abc" made twice
    for a, b in merges:
        vocab[len(vocab)] = a + b
    tok = Tokenizer(vocab, merges)
    assert not tok.fast_path_available()
    assert tok.encode_fast("abcabc") == tok.encode("abcabc")


def test_fast_path_bypassed_when_a_token_cannot_encode_to_itself():
    # 'bc' merges before 'ab', so the reference turns 'abc' into [a, bc] and never uses the token
    # 'abc' = (ab, c); tiktoken would find 'abc' in its ranks and emit it.
    vocab = {i: bytes([i]) for i in range(256)}
    merges = [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")]
    for a, b in merges:
        vocab[len(vocab)] = a + b
    tok = Tokenizer(vocab, merges)
    assert tok.tiktoken_encoding().encode_ordinary("abc") == [258]
    assert not tok.fast_path_available()
    assert tok.encode_fast("abc") == tok.encode("abc") == [ord("a"), 256]


def test_fast_path_equals_reference_on_random_self_consistent_merges():
    # The three checks of fast_path_available are what make rank-of-concatenation merging equal to
    # merge-order merging: any merge list passing them (not only trained ones) must agree.
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        tokens = [c.encode() for c in "abc"]
        merges = []
        for _ in range(rng.randint(2, 10)):
            a, b = rng.choice(tokens), rng.choice(tokens)
            if a + b not in tokens:
                merges.append((a, b))
                tokens.append(a + b)
        vocab = {i: bytes([i]) for i in range(256)} | {256 + i: a + b for i, (a, b) in enumerate(merges)}
        tok = Tokenizer(vocab, merges)
        for _ in range(30):
            text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 14)))
            assert tok.encode_fast(text) == tok.encode(text)
        checked += tok.fast_path_available()
    assert checked > 100


def test_roundtrip_and_fast_path_on_multilingual_real_text(trained, shared_data):
    lines = (shared_data / "langid/tatoeba/tatoeba_long.tsv").read_text().splitlines()[1:]
    text = "\n".join(line.split("\t")[-1] for line in lines)
    assert trained.decode(trained.encode(text)) == text
    assert trained.encode_fast(text) == trained.encode(text)


def test_fast_path_equals_reference_on_real_web_text(trained, shared_data):
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        docs = [json.loads(line)["text"] for line in fh][:200]
    for doc in docs:
        assert trained.encode_fast(doc) == trained.encode(doc)
        assert trained.decode(trained.encode_fast(doc)) == doc


# ---------------------------------------------------------------- files and streaming

def test_gpt2_format_files(tmp_path):
    # Like GPT-2's own files: bytes numbered in byte-to-unicode order ('!' is 0), then the merges.
    table = bytes_to_unicode()
    space_t = table[ord(" ")] + "t"
    tokens = list(table.values()) + [space_t, "he", space_t + "he", EOT]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text(f"#version: 0.2\n{table[ord(' ')]} t\nh e\n{space_t} he\n", encoding="utf-8")
    tok = Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt", [EOT])
    byte_id = {b: list(table).index(b) for b in range(256)}
    assert byte_id[ord("!")] == 0 and byte_id[ord(" ")] == 220  # GPT-2's ids for '!' and ' '
    assert tok.encode(" the") == [258]
    assert tok.encode(" then!" + EOT, allowed_special="all") == [258, byte_id[ord("n")], 0, 259] == \
        tok.encode_fast(" then!" + EOT, allowed_special="all")
    assert tok.encode(" then!" + EOT)[:4] == [258, byte_id[ord("n")], 0, byte_id[ord("<")]]  # text: '<', '|', ...
    assert tok.encode("\t x") == [byte_id[9], byte_id[32], byte_id[ord("x")]] == tok.encode_fast("\t x")
    assert tok.decode([258, 0, 259]) == " the!" + EOT
    tok.save(tmp_path / "saved")
    again = Tokenizer.from_files(tmp_path / "saved/vocab.json", tmp_path / "saved/merges.txt", [EOT])
    assert again.vocab == tok.vocab and again.merges == tok.merges
    assert json.loads((tmp_path / "saved/vocab.json").read_text()) == json.loads((tmp_path / "vocab.json").read_text())


def test_gpt2_files_with_bad_lines_name_the_line(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({bytes_to_unicode()[b]: b for b in range(256)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match=r"merges.txt:2"):
        Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nx y\n")
    with pytest.raises(ValueError, match="not in the vocab"):
        Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_saved_trained_tokenizer_reloads_identically(synthetic, tmp_path):
    synthetic.save(tmp_path)
    again = Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt", [EOT, EOT + EOT])
    text = _synthetic_text(7, 300) + EOT
    assert again.encode(text) == synthetic.encode(text) and again.special_ids == synthetic.special_ids
    assert again.encode(text, allowed_special="all") == synthetic.encode(text, allowed_special="all")


@pytest.mark.parametrize("allowed", [(), "all", {EOT}])
def test_encode_iterable_equals_encode(synthetic, allowed):
    text = (_synthetic_text(3, 3000) + EOT + EOT + EOT) * 3
    chunks = [text[i:i + 997] for i in range(0, len(text), 997)]  # cuts anywhere, even inside specials
    assert list(synthetic.encode_iterable(iter(chunks), buffer_chars=4096, allowed_special=allowed)) == \
        synthetic.encode(text, allowed_special=allowed)
    one_line = "word " * 20_000  # no newline at all: cuts still found
    assert list(synthetic.encode_iterable([one_line[i:i + 1000] for i in range(0, len(one_line), 1000)],
                                          buffer_chars=8192)) == synthetic.encode(one_line)


def test_encode_iterable_memory_stays_flat(synthetic, tmp_path):
    def peak_while_encoding(lines: int) -> tuple[int, int]:
        path = tmp_path / f"big-{lines}.txt"
        with open(path, "w") as fh:
            for i in range(lines):
                fh.write(f"Line {i} of a long file, with some words to encode.\n")
        tracemalloc.start()
        count = 0
        with open(path) as fh:
            for _ in synthetic.encode_iterable(fh, buffer_chars=1 << 16):
                count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, peak

    small_count, small_peak = peak_while_encoding(10_000)
    big_count, big_peak = peak_while_encoding(40_000)
    assert big_count > 3.9 * small_count
    assert big_peak < 1.5 * small_peak  # 4x the input, about the same memory: it streams
