"""The deobfuscate-v1 normalization: each disguise pattern resolved, ordinary text left alone."""
from __future__ import annotations

import gzip
import json

import pytest

from filters.deobfuscate import Vocabulary, deobfuscate
from filters.models import prepare_text


@pytest.mark.parametrize("disguised, plain", [
    ("SUCK MY C*CK ... F*CKING *SSH*LE", "suck my cock ... fucking asshole"),  # issue #11
    ("f*ck", "fuck"), ("f**king", "fucking"), ("*ssh*le", "asshole"), ("c*ck", "cock"), ("sh#t", "shit"),
    ("sh1t", "shit"), ("$hit", "shit"), ("c0ck", "cock"), ("b!tch", "bitch"), ("5h1t", "shit"),
    ("a$$hole", "asshole"), ("n1gg3r", "nigger"), ("f@ck", "fuck"),
    ("f u c k you", "fuck you"), ("f.u.c.k off", "fuck off"), ("f-u-c-k", "fuck"),
    ("fuuuuuck", "fuck"), ("shiiiiit", "shit"),
    ("fück", "fuck"), ("ѕhіt", "shit"),  # Cyrillic ѕ and і in a Latin word
    ("ｆｕｃｋ", "fuck"), ("𝐟𝐮𝐜𝐤", "fuck"), ("f♥ck", "fuck"),
    ("s**t happens", "shit happens"), ("what the f*ck!!", "what the fuck!!"),
])
def test_disguised_spellings_become_plain(disguised, plain):
    assert deobfuscate(disguised) == plain


@pytest.mark.parametrize("text", [
    "The price is $5, or 3*4 = 12 for a dozen.",
    "Upgrade to v1.2.3 (mp3, covid19 and 4k fixes); see footnote 2.",
    "Write to |||EMAIL_ADDRESS||| or call |||PHONE_NUMBER||| from |||IP_ADDRESS|||.",
    "def f(a, b): return a*b + a**2  # 2*x",
    "Wow!! Really? Yes!!! www.example.com and shhh, zzz.",
    "Москва сор и пыль",  # a Russian word stays Russian (look-alikes only inside mixed words)
    "Plan B a la carte, x-ray, e-mail, re-use, co-op, U.S.A. and i.e.",
    "Password: p4ssw0rd, user@example.com, C# and F# and C++.",
])
def test_ordinary_text_keeps_its_words(text):
    assert prepare_text(deobfuscate(text)) == prepare_text(text)


def test_emphasis_and_footnote_marks_are_dropped_not_the_words():
    assert deobfuscate("**Bold** and *word* text*") == "bold and word text"
    assert deobfuscate("def f(*args, **kwargs)") == "def f(args, kwargs)"


def test_accents_fold_and_plain_text_is_returned_as_it_is():
    assert deobfuscate("Über café naïve") == "uber cafe naive"
    text = "A plain sentence, nothing to do here."
    assert deobfuscate(text) is text


def test_masked_letters_resolve_to_the_most_frequent_vocabulary_word_or_stay():
    vocab = Vocabulary(["shit", "slut", "smut"])
    assert vocab.match(["s", "", "", "t"]) == "shit"
    assert vocab.match(["s", "", "u", "t"]) == "slut"
    assert vocab.match(["b", "", "", "k"]) is None
    assert deobfuscate("b**k and c*t and a*s") == "b**k and c*t and a*s"  # no list word fits / too short


def hplt_texts(shared_data) -> list[str]:
    """The warc2text texts of HPLT's 100 CC and 100 WIDE pages."""
    zstandard = pytest.importorskip("zstandard")
    texts = []
    for name in ("CC.jsonl.zst", "wide.jsonl.zst"):
        with open(shared_data / "html/hplt-sample100" / name, "rb") as fh:
            lines = zstandard.ZstdDecompressor().stream_reader(fh).read().decode("utf-8", "surrogateescape").splitlines()
        texts += [json.loads(line).get("t") or "" for line in lines]
    return texts


def test_real_pages_full_of_asterisks_keep_their_words(shared_data):
    """Pages of the HPLT CC sample that hold asterisks or symbol-letter mixes: no word of theirs
    becomes a list word that was not there."""
    from filters.deobfuscate import vocabulary

    rank = vocabulary().rank
    checked = 0
    for text in hplt_texts(shared_data):
        if "*" in text or "$" in text:
            checked += 1
            before = set(prepare_text(text).split())
            after = set(prepare_text(deobfuscate(text)).split())
            assert {w for w in after - before if w in rank} == set(), text[:200]
    assert checked >= 10


def test_real_obfuscated_posts_are_resolved(shared_data):
    """HatemojiBuild and EDOS posts that disguise a list word: most come out with the plain word."""
    import csv
    import re

    disguised = re.compile(r"\b[a-z]*[*@$][a-z*@$]*\b")
    found = resolved = 0
    for path in (shared_data / "toxicity/extra/edos/edos_labelled_aggregated.csv",
                 shared_data / "toxicity/extra/hatemojibuild/train.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for token in disguised.findall(row["text"].lower()):
                    if re.fullmatch(r"f\*+ck(ing|ed|er)?|sh\*+t|b\*+tch(es)?|c\*+nt", token):
                        found += 1
                        resolved += "*" not in deobfuscate(token)
    assert found >= 5 and resolved == found


def test_dolma_cc_text_changes_only_where_disguised(shared_data):
    """Real CC documents: the normalized words equal the plain ones except for resolved list words,
    folded accents and dropped emphasis marks."""
    import unicodedata

    from filters.deobfuscate import vocabulary

    rank = vocabulary().rank
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    docs = [json.loads(line)["text"] for line in gzip.open(path, "rt")]
    for text in docs:
        new_words = set(prepare_text(deobfuscate(text)).split()) - set(prepare_text(text).split())
        plain = {"".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))
                 for w in prepare_text(text).split()}
        unexplained = {w for w in new_words if w in rank and w not in plain}
        assert not unexplained, (unexplained, text[:200])


# ------------------------------------------- compiled scans against the regexes they replace

def _regex_deobfuscate(text: str) -> str:
    """deobfuscate-v1 as first written, every step a regex over the whole text: the reference
    the compiled scans of `filters.deobfuscate` must equal character for character."""
    import re

    from filters import deobfuscate as d

    if not d._PRECHECK.search(text):
        return text
    text = text.lower()
    if not text.isascii():
        table = d._fold_table()
        fold_run = re.compile("[\u00c0-\u024f\u1e00-\u1eff\u24b6-\u24e9\uff21-\uff5a\U0001d400-\U0001d7ff"
                              + re.escape(d._SYMBOL_MASKS) + "]+")
        assert all(fold_run.fullmatch(chr(code)) for code in table)  # translating runs = translating all
        text = fold_run.sub(lambda m: m.group().translate(table), text)
        if re.search(f"[a-z]{d._CONFUSABLE_CLASS}|{d._CONFUSABLE_CLASS}[a-z]", text):
            text = d._MIXED.sub(lambda m: "".join(d._CONFUSABLES.get(c, c) for c in m.group()), text)
    hint = re.compile(rf"[a-z][{d._SIGNAL}]|[{d._SIGNAL}][a-z]|([a-z])\1\1")
    core_run = re.compile("[a-z0-9" + re.escape(d.MASKS + "".join(d.LEET)) + "]+")
    pieces, done = [], 0
    for found in hint.finditer(text):
        if found.start() < done:
            continue
        start = found.start()
        while start > done and text[start - 1] in d._CORE_SET:
            start -= 1
        end = core_run.match(text, found.start()).end()
        pieces += [text[done:start], d._token.__wrapped__(text[start:end])]
        done = end
    text = "".join(pieces) + text[done:] if pieces else text
    return d._SPACED.sub(d._spaced, text)


def _fuzz_texts(count: int, seed: int = 11) -> list[str]:
    """Random texts from the characters every step reacts to: masks, leet, spacers, repeated
    letters, accents, look-alikes, fullwidth and mathematical letters, lone surrogates, PII masks."""
    import random

    rng = random.Random(seed)
    pieces = (list("abcfkstuiohnr") + list("*#%_@$!|+0123456789") + [" ", " ", ".", "-", "\n", ","]
              + list("äöüßéèñçłøæœ") + list("аеорсіѕαο") + ["ｆ", "Ｆ", "𝐟", "♥", "•", "Ǆ", "ǅ", "\ud800", "ÀB"]
              + ["fuck", "shit", "cock", "www", "aaa", "|||EMAIL_ADDRESS|||", "f u c k", "s.h.i.t", "**", "Ü"])
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))) for _ in range(count)]


def test_compiled_scans_equal_the_regexes_on_random_texts():
    for text in _fuzz_texts(20_000):
        assert deobfuscate(text) == _regex_deobfuscate(text), repr(text)


def test_compiled_scans_equal_the_regexes_on_real_pages_and_posts(shared_data):
    """Real pages (HPLT CC and WIDE: accents, "mp3", "www", markdown) and real obfuscated posts
    (EDOS, HatemojiBuild: masks, leetspeak, spacing, emoji)."""
    import csv

    texts = hplt_texts(shared_data)
    for path in (shared_data / "toxicity/extra/edos/edos_labelled_aggregated.csv",
                 shared_data / "toxicity/extra/hatemojibuild/train.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            texts += [row["text"] for row in csv.DictReader(fh)][:5_000]
    changed = 0
    for text in texts:
        plain = _regex_deobfuscate(text)
        assert deobfuscate(text) == plain, text[:200]
        changed += plain != text.lower()
    assert changed >= 100  # the posts exercise the replacing paths, not only the scans


def test_fold_replacements_fit_the_compiled_buffer():
    from filters.deobfuscate import _LONGEST_FOLD, _fold_table

    assert max(len(plain) for plain in _fold_table().values()) == _LONGEST_FOLD
