"""HTML -> main text with resiliparse, after charset detection.

Charset order (what browsers and CC pipelines effectively do): a byte-order mark; UTF-8 when the
bytes are valid UTF-8; the HTTP header's charset when it decodes the bytes cleanly; otherwise
resiliparse's detector (meta tags + content statistics). Decoding never fails: undecodable bytes
are dropped rather than crashing a record.
"""
from __future__ import annotations

import codecs

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def detect_charset(data: bytes, declared: str | None = None) -> str:
    """The charset to decode `data` with; `declared` is the HTTP header's charset, if any."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            codecs.lookup(declared)
            data.decode(declared)
            return declared
        except (LookupError, UnicodeDecodeError):
            pass
    return detect_encoding(data)


def decode_html(data: bytes, declared: str | None = None) -> str:
    """Bytes -> str with `detect_charset`; invalid sequences are dropped, never raised."""
    return bytes_to_str(data, detect_charset(data, declared), errors="ignore")


def html_to_text(html: bytes | str, *, main_content: bool = True, encoding: str | None = None) -> str | None:
    """Extract readable text from an HTML page.

    `html` as bytes is decoded with charset detection (`encoding` is a declared charset hint, e.g.
    from the HTTP header). Line breaks between blocks are kept because line-based quality rules
    (Gopher, C4, FineWeb) need them. Returns None when the page has no text.
    """
    if isinstance(html, bytes):
        html = decode_html(html, encoding)
    if not html or not html.strip():
        return None
    tree = HTMLTree.parse(html)
    text = extract_plain_text(
        tree,
        main_content=main_content,
        preserve_formatting=True,
        alt_texts=False,
        list_bullets=True,
        noscript=False,
    )
    text = text.strip()
    return text or None
