"""PII masking: e-mail addresses, phone numbers and IP addresses become fixed placeholders.

Each `mask_*` function returns the masked text and how many items it replaced. The patterns are
precise rather than greedy, and searched only where they can match: around an "@", inside runs
of digits, inside runs of hex digits and colons. Known non-PII look-alikes are left alone: years, prices, dates, version
numbers ("v1.2.3.4", "version 10.0.0.1"), ISBNs, times ("12:30:45"), retina image names
("logo@2x.png").
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
from numba import njit
from pydantic import Field

from filters.base import DocFilter, Document, FilterParams, batch_cache
from filters.text import code_points

EMAIL_PLACEHOLDER = "|||EMAIL_ADDRESS|||"
PHONE_PLACEHOLDER = "|||PHONE_NUMBER|||"
IP_PLACEHOLDER = "|||IP_ADDRESS|||"

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")
_MAX_LOCAL_PART, _MAX_DOMAIN = 64, 255  # RFC 5321 limits
_NOT_EMAIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".ico")

_PHONE = re.compile(
    r"""
    (?<![\w+$\u20ac\u00a3\u00a5.,/-])                 # not glued to a word, number or currency
    (?:
        \+[0-9]{1,3}                                  # international: +country code,
        (?:[ .-]?\([0-9]{1,4}\))?                     #   optional (area code),
        [ .-]?[0-9]{1,12}(?:[ .-][0-9]{1,8}){0,5}     #   digit groups (8-15 digits checked later)
    |
        (?:1[ .-]?)?                                  # North American: optional trunk 1,
        (?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-]?)         #   area code, optionally in brackets,
        [0-9]{3}[ .-]?[0-9]{4}                        #   exchange and line number
    )
    (?![\w-]|[.,/][0-9])
    """,
    re.VERBOSE,
)
_ISBN_BEFORE = re.compile(r"isbn(?:-1[03])?[:\s]*$", re.IGNORECASE)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.[0-9])")
_VERSION_BEFORE = re.compile(r"(?:\bversion|\bver\.?|\bv|\brelease|\bbuild)\s*$", re.IGNORECASE)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Two colons at most 4 hex digits apart: every IPv6 address of 3+ groups has this (literal-led, fast).
_IPV6_PRECHECK = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX_AND_COLON = frozenset("0123456789abcdefABCDEF:")
_CONTEXT_CHARS = 16
# Runs that could hold a phone number or an IPv4 address (7+ characters, digits at both ends).
_DIGIT_RUN = re.compile(r"[0-9(+][0-9 ().+-]{5,}[0-9]")


def _replace(text: str, matches: Iterable[re.Match[str]], placeholder: str,
             accept: Callable[[re.Match[str]], bool]) -> tuple[str, int]:
    """Replace the `matches` (in text order, not overlapping) that `accept` confirms."""
    pieces: list[str] = []
    last = 0
    for match in matches:
        if accept(match):
            pieces += (text[last:match.start()], placeholder)
            last = match.end()
    if not pieces:
        return text, 0
    pieces.append(text[last:])
    return "".join(pieces), len(pieces) // 2


def _in_candidates(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Matches of a phone/IP `pattern`, searched only inside runs of digits and separators.

    Scanning every position with the full pattern costs ~20 ns/char; the candidate scan is ~4x
    cheaper. Every phone or IPv4 match lies inside one candidate run, and the window keeps two
    characters after the run so the pattern's lookahead sees the real text.
    """
    for start, end in _digit_runs(text):
        yield from pattern.finditer(text, start, end + 2)


@batch_cache  # the phone and IPv4 passes read the same runs unless a phone was masked in between
def _digit_runs(text: str) -> list[tuple[int, int]]:
    """The spans `_DIGIT_RUN.finditer(text)` gives (found in compiled code: ~2x faster)."""
    return [(start, end) for start, end in _digit_run_spans(code_points(text)).tolist()]


def _is_in(chars: str) -> np.ndarray:
    """A lookup table by ASCII code: is the character one of `chars`?"""
    table = np.zeros(128, np.bool_)
    table[[ord(c) for c in chars]] = True
    return table


_RUN_START, _RUN_BODY = _is_in("0123456789(+"), _is_in("0123456789 ().+-")


@njit(cache=True, nogil=True)
def _digit_run_spans(codes: np.ndarray) -> np.ndarray:
    """(start, end) of each match of `_DIGIT_RUN` = [0-9(+][0-9 ().+-]{5,}[0-9], leftmost and
    greedy as the regex finds them: from a start character the match runs to the last digit of
    the run of body characters, if that leaves 7 characters or more. A run that gives no match
    from its first start gives none from a later one, so each run is read once."""
    spans = np.empty((len(codes) // 7 + 1, 2), np.int64)
    found, p, n = 0, 0, len(codes)
    while p < n:
        if codes[p] >= 128 or not _RUN_START[codes[p]]:
            p += 1
            continue
        end = p + 1
        while end < n and codes[end] < 128 and _RUN_BODY[codes[end]]:
            end += 1
        last = end - 1
        while last >= p + 6 and not 48 <= codes[last] <= 57:
            last -= 1
        if last >= p + 6:
            spans[found, 0], spans[found, 1] = p, last + 1
            found += 1
        p = end
    return spans[:found]


def _ipv6_candidates(text: str) -> Iterator[re.Match[str]]:
    """IPv6 candidate matches, searched only in the runs of hex digits and colons that contain
    ":h:" (every candidate lies inside such a run and contains one; the full-text scan cost
    ~0.5 ms on each page with a "::" or a time of day)."""
    run_end = 0
    for hint in _IPV6_PRECHECK.finditer(text):
        if hint.start() < run_end:
            continue  # this run was searched already
        start, run_end = hint.start(), hint.end()
        while start > 0 and text[start - 1] in _HEX_AND_COLON:
            start -= 1
        while run_end < len(text) and text[run_end] in _HEX_AND_COLON:
            run_end += 1
        yield from _IPV6_CANDIDATE.finditer(text, start, run_end + 1)  # + 1: the lookahead's character


def _find_emails(text: str) -> Iterator[re.Match[str]]:
    """E-mail matches, searched only in a window around each "@" (the full scan is ~30 ns/char)."""
    searched_to = 0
    at = text.find("@")
    while at != -1:
        start = max(searched_to, at - _MAX_LOCAL_PART)
        match = _EMAIL.search(text, start, at + _MAX_DOMAIN + 1)
        while match is not None and match.end() <= at:
            match = _EMAIL.search(text, match.end(), at + _MAX_DOMAIN + 1)
        if match is not None and match.start() <= at:
            yield match
            searched_to = match.end()
        at = text.find("@", max(at + 1, searched_to))


def _is_email(match: re.Match[str]) -> bool:
    return not match.group(0).lower().endswith(_NOT_EMAIL_SUFFIXES)


def _is_phone(match: re.Match[str]) -> bool:
    number = match.group(0)
    digits = sum(c.isdigit() for c in number)
    if number.startswith("+"):
        return 8 <= digits <= 15
    if _ISBN_BEFORE.search(match.string, max(0, match.start() - _CONTEXT_CHARS), match.start()):
        return False
    # A bare digit run is a phone number only with a plausible area code (not 0/1-leading).
    return not number.isdigit() or number[-10] not in "01"


def _is_ipv4(match: re.Match[str]) -> bool:
    start = match.start()
    return not _VERSION_BEFORE.search(match.string, max(0, start - _CONTEXT_CHARS), start)


def _is_ipv6(match: re.Match[str]) -> bool:
    candidate = match.group(0)
    groups = candidate.split(":")
    # Full 8-group form or "::"-compressed; at least one digit (so "dead::beef" style words and
    # "12:30:45" style times are not addresses).
    if ("::" not in candidate and len(groups) != 8) or not any(c.isdigit() for c in candidate):
        return False
    if sum(1 for g in groups if g) < 2:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def mask_emails(text: str) -> tuple[str, int]:
    """Replace e-mail addresses with |||EMAIL_ADDRESS|||; return (text, number masked)."""
    return _replace(text, _find_emails(text), EMAIL_PLACEHOLDER, _is_email)


def mask_phone_numbers(text: str) -> tuple[str, int]:
    """Replace US and international phone numbers with |||PHONE_NUMBER|||; return (text, count).

    Matches "+<country> ..." numbers with 8-15 digits (E.164) and North American numbers such as
    (283)-182-3829, 283-182-3829, 283.182.3829, 2831823829, 1-800-555-0199.
    """
    return _replace(text, _in_candidates(_PHONE, text), PHONE_PLACEHOLDER, _is_phone)


def mask_ips(text: str) -> tuple[str, int]:
    """Replace IPv4 (octets 0-255) and IPv6 addresses with |||IP_ADDRESS|||; return (text, count)."""
    text, ipv4 = _replace(text, _in_candidates(_IPV4, text), IP_PLACEHOLDER, _is_ipv4)
    text, ipv6 = _replace(text, _ipv6_candidates(text), IP_PLACEHOLDER, _is_ipv6)
    return text, ipv4 + ipv6


class PIIFilter(DocFilter):
    """Masks PII in `doc.text` and counts it (`pii_emails`, `pii_phones`, `pii_ips`).

    Masking keeps the document; with `max_pii` set, documents with more PII items than that are
    removed as "pii:max_pii" (e.g. contact lists and address dumps).
    """

    name: ClassVar[str] = "pii"
    order: ClassVar[int] = 20  # rewrites the text: before the filters that should see it masked
    reasons: ClassVar[tuple[str, ...]] = ("max_pii",)

    class Params(FilterParams):
        decisions = ("max_pii",)

        emails: bool = True
        phones: bool = True
        ips: bool = True
        max_pii: int | None = Field(None, ge=0, description="remove docs with more PII items")

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field(name, pa.int32()) for name in ("pii_emails", "pii_phones", "pii_ips")]

    def annotate(self, doc: Document) -> None:
        text = doc.text
        emails = phones = ips = 0
        if self.params.emails:
            text, emails = mask_emails(text)
        if self.params.phones:
            text, phones = mask_phone_numbers(text)
        if self.params.ips:
            text, ips = mask_ips(text)
        doc.text = text
        doc.signals.update(pii_emails=emails, pii_phones=phones, pii_ips=ips)

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        limit = self.params.max_pii
        if limit is not None and signals["pii_emails"] + signals["pii_phones"] + signals["pii_ips"] > limit:
            return "pii:max_pii"
        return None
