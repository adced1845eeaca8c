"""PII masking: positives and look-alike negatives, real CC text, edge cases, and the PIIFilter."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import Document, filter_class
from filters.pii import (EMAIL_PLACEHOLDER, IP_PLACEHOLDER, PHONE_PLACEHOLDER, PIIFilter,
                         mask_emails, mask_ips, mask_phone_numbers)
from tests.filtering import verdict

PHONES = [
    "(283)-182-3829", "(283) 182-3829", "283-182-3829", "283.182.3829", "283 182 3829",
    "2831823829", "1-800-555-0199", "+1 283 182 3829", "+1 (283) 182-3829", "+1-283-182-3829",
    "+14155552671", "+44 20 7946 0958", "+49 30 1234567", "+33 1 23 45 67 89",
    "+91 98765 43210", "+86 10 1234 5678", "+420 777 098 098", "+385 (0)23 123 456",
]
NOT_PHONES = [
    "In 1999-2004 prices rose by 12%.", "It costs $1,234,567.89 in total.", "Release 10.2.3.4 is out.",
    "Released on 2021-03-15 at 12:30:45.", "ISBN 978-3-16-148410-0", "ISBN 0306406152",
    "ISBN: 3161484100", "Population 1,234,567 (2020).", "The score was 3-2.", "Call 911 now.",
    "Order #1234567 shipped.", "See pages 100-200.", "Rated 1.000.000 EUR.", "On 10/12/2021.",
    "Unix time 1700000000.", "Account ID 0123456789.", "Price: $2831823829", "EAN 9783161484100",
    "Scored +5 points.", "Pi is 3.14159265358979.", "Coordinates 40.7128, -74.0060.",
]
EMAILS = ["john.doe@example.com", "a_b+tag@sub.domain.co.uk", "x1@mail.cz", "USER@EXAMPLE.ORG"]
NOT_EMAILS = ["logo@2x.png", "icon@3x.webp", "@handle on Twitter", "a@b", "user@localhost",
              "email at example dot com"]
IPV4 = ["192.168.1.1", "10.0.0.255", "8.8.8.8", "255.255.255.255"]
NOT_IPV4 = ["999.1.1.1", "version 1.2.3.4", "v1.2.3.4", "1.2.3.4.5", "256.1.1.1", "1.2.3"]
IPV6 = ["2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]
NOT_IPV6 = ["12:30:45", "std::vector<int>", "dead::beef", "00:1A:2B:3C:4D:5E", "a::b", "10:00-12:00"]


@pytest.mark.parametrize("phone", PHONES)
def test_phone_numbers_are_masked_in_context(phone: str) -> None:
    masked, count = mask_phone_numbers(f"For bookings call {phone}, Monday to Friday.")
    assert (masked, count) == (f"For bookings call {PHONE_PLACEHOLDER}, Monday to Friday.", 1)


@pytest.mark.parametrize("text", NOT_PHONES)
def test_phone_look_alikes_are_left_alone(text: str) -> None:
    assert mask_phone_numbers(text) == (text, 0)


@pytest.mark.parametrize("email", EMAILS)
def test_emails_are_masked(email: str) -> None:
    assert mask_emails(f"Write to <{email}> today.") == (f"Write to <{EMAIL_PLACEHOLDER}> today.", 1)


@pytest.mark.parametrize("text", NOT_EMAILS)
def test_email_look_alikes_are_left_alone(text: str) -> None:
    assert mask_emails(text) == (text, 0)


@pytest.mark.parametrize("address", IPV4 + IPV6)
def test_ip_addresses_are_masked(address: str) -> None:
    assert mask_ips(f"Server {address} is down.") == (f"Server {IP_PLACEHOLDER} is down.", 1)


@pytest.mark.parametrize("text", NOT_IPV4 + NOT_IPV6)
def test_ip_look_alikes_are_left_alone(text: str) -> None:
    assert mask_ips(text) == (text, 0)


def test_several_items_and_counts() -> None:
    text = ("Contact: ann@example.com, bob@example.org; phone 415-555-2671, fax 415-555-2672. "
            "Hosts 10.0.0.1 and 10.0.0.2.")
    text, emails = mask_emails(text)
    text, phones = mask_phone_numbers(text)
    text, ips = mask_ips(text)
    assert (emails, phones, ips) == (2, 2, 2)
    assert text == (f"Contact: {EMAIL_PLACEHOLDER}, {EMAIL_PLACEHOLDER}; phone {PHONE_PLACEHOLDER}, "
                    f"fax {PHONE_PLACEHOLDER}. Hosts {IP_PLACEHOLDER} and {IP_PLACEHOLDER}.")


@pytest.mark.parametrize("text", ["", "   \n\t", "no digits, no at-sign, nothing to mask"])
def test_empty_and_clean_text_unchanged(text: str) -> None:
    for mask in (mask_emails, mask_phone_numbers, mask_ips):
        assert mask(text) == (text, 0)


def test_surrogates_and_mixed_scripts() -> None:
    text = "联系 zhang@example.cn 电话 +86 10 1234 5678 \udcff Привет 192.168.0.1"
    text, emails = mask_emails(text)
    text, phones = mask_phone_numbers(text)
    text, ips = mask_ips(text)
    assert (emails, phones, ips) == (1, 1, 1)
    assert "\udcff" in text and "Привет" in text


def test_ten_megabyte_text() -> None:
    block = "Reach us at help@example.com or 283-182-3829 from 10.1.2.3. " + "Plain prose here. " * 50
    text = block * (10_000_000 // len(block) + 1)
    n_blocks = text.count("help@example.com")
    doc = Document(doc_id="big", text=text)
    PIIFilter().annotate(doc)
    assert doc.signals == {"pii_emails": n_blocks, "pii_phones": n_blocks, "pii_ips": n_blocks}
    assert not any(pii in doc.text for pii in ("help@example.com", "283-182-3829", "10.1.2.3"))
    assert doc.text.count("Plain prose here.") == text.count("Plain prose here.")


def test_real_cc_text_masks_contacts_and_keeps_prose(shared_data: Path) -> None:
    """Dolma's CC sample: every masked document lost only its PII, and known contacts are found."""
    path = shared_data / "quality" / "dolma-cc-text" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    filt = PIIFilter()
    totals = {"pii_emails": 0, "pii_phones": 0, "pii_ips": 0}
    placeholder = re.compile("|".join(map(re.escape, (EMAIL_PLACEHOLDER, PHONE_PLACEHOLDER, IP_PLACEHOLDER))))
    for i, text in enumerate(texts):
        doc = Document(doc_id=str(i), text=text)
        filt.annotate(doc)
        for key in totals:
            totals[key] += doc.signals[key]
        # outside the placeholders, the text is unchanged
        kept_parts = placeholder.split(doc.text)
        position = 0
        for part in kept_parts:
            found = text.find(part, position)
            assert found >= 0
            position = found + len(part)
    assert totals["pii_emails"] >= 40
    assert totals["pii_phones"] >= 30
    assert totals["pii_ips"] >= 4
    sample = next(t for t in texts if "+48 89 742 14 05" in t)
    assert "+48 89 742 14 05" not in mask_phone_numbers(sample)[0]


def test_pii_filter_toggles_and_decide() -> None:
    text = "Mail ann@example.com or call 283-182-3829 (host 10.0.0.1)."
    doc = Document(doc_id="1", text=text)
    PIIFilter({"phones": False}).annotate(doc)
    assert doc.signals == {"pii_emails": 1, "pii_phones": 0, "pii_ips": 1}
    assert "283-182-3829" in doc.text
    filt = filter_class("pii")({"max_pii": 2})
    assert [f.name for f in filt.signal_schema()] == ["pii_emails", "pii_phones", "pii_ips"]
    assert verdict(filt, Document(doc_id="2", text=text)) == (False, "pii:max_pii")
    assert verdict(PIIFilter(), Document(doc_id="3", text=text)) == (True, None)
    with pytest.raises(ValueError):
        PIIFilter({"max_pii": -1})


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789abcdefABCg:.%_ x\n\u00e9")), max_size=80))
def test_ipv6_search_in_hex_runs_finds_what_a_full_scan_finds(text: str) -> None:
    from filters.pii import _IPV6_CANDIDATE, _ipv6_candidates

    assert [m.span() for m in _ipv6_candidates(text)] == [m.span() for m in _IPV6_CANDIDATE.finditer(text)]


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 ().+-x\u0663\n")), max_size=80))
def test_digit_runs_are_the_regex_matches(text: str) -> None:
    from filters.pii import _DIGIT_RUN, _digit_runs

    assert _digit_runs(text) == [m.span() for m in _DIGIT_RUN.finditer(text)]


def test_candidate_scans_equal_the_regexes_on_real_text(shared_data: Path) -> None:
    from filters.pii import _DIGIT_RUN, _IPV6_CANDIDATE, _digit_runs, _ipv6_candidates

    texts = [json.loads(line)["text"] for line in gzip.open(
        shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")][:300]
    for text in texts:
        assert _digit_runs(text) == [m.span() for m in _DIGIT_RUN.finditer(text)]
        assert [m.span() for m in _ipv6_candidates(text)] == [m.span() for m in _IPV6_CANDIDATE.finditer(text)]
