"""Block scoring on top of resiliparse's main-content extraction.

resiliparse (C/Rust, fast) removes the obvious boilerplate elements (nav, header, footer, asides,
hidden elements) and writes the rest as reduced HTML: headings, paragraphs, lists, pre-formatted
text, line breaks and links. This module reads that reduced HTML back as a list of text blocks
with the features boilerplate detectors rely on (link density, length, sentence punctuation, the
block's tag) and keeps the blocks that look like content, in the spirit of jusText's and
trafilatura's documented heuristics:

- a block that is mostly link text (menus, tag clouds, "related" lists) is boilerplate;
- a block matching a boilerplate phrase (cookies, share buttons, copyright, newsletter) is
  boilerplate when it is short;
- a long block with little link text is content;
- short blocks take the class of their neighbours (a heading or a short line between two content
  blocks is content; a short line among boilerplate is boilerplate);
- everything before the first and after the last content block is dropped, except headings
  leading into the first one (the page title), so a page's header and footer leftovers go.

Only the reduced HTML's string is parsed here (no Python walk over the DOM), which keeps the cost
a fraction of the DOM parse.
"""
from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>|([^<]+)")
_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_BLOCK_TAGS = frozenset(("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "pre"))
_HEADINGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))
_SENTENCE_END = frozenset(".!?:;。！？…\"'”»)")

# Phrases that mark interface text rather than content (cookie banners, sharing, accounts,
# newsletters, legal footers). Only short blocks are judged by them: a long paragraph that
# mentions cookies is still a paragraph.
_BOILERPLATE = re.compile(
    r"\b(cookies?|consent|privacy (policy|settings)|terms (of (use|service)|and conditions)|all rights reserved|"
    r"copyright|share (this|on)|tweet|pin it|follow us|subscribe|newsletter|sign (up|in)|log ?in|"
    r"register|create an account|add to (cart|basket|wishlist)|read more|continue reading|"
    r"skip to (main )?content|back to top|advertisement|sponsored|related (posts|articles)|"
    r"you may also like|recommended for you|leave a (comment|reply)|powered by)\b|©",
    re.IGNORECASE,
)

LONG = 80            # characters: a block this long with little link text is content
SHORT = 25           # characters: below this a block is judged by its neighbours
MAX_LINK_DENSITY = 0.5
BOILERPLATE_MAX_CHARS = 160


@dataclass(slots=True)
class Block:
    """One text block of the page: its text, tag kind and how much of it is link text."""

    text: str
    kind: str          # "h1".."h6", "li", "tr" (table row, cells split by tabs), "p", "pre" or "text"
    link_chars: int
    bullet: str = ""   # first block of a list item: "•" or its number ("3."); "" otherwise
    depth: int = 0     # list nesting depth

    @property
    def link_density(self) -> float:
        return self.link_chars / max(1, len(self.text))


class _BlockReader:
    """Turns resiliparse's reduced HTML into `Block`s (see `parse_blocks`)."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.link_chars = 0
        self.kind = "text"
        self.bullet = ""
        self.lists: list[list[int]] = []  # open lists: [is_ordered, items so far]

    def flush(self) -> None:
        if self.parts:
            raw = "".join(self.parts)
            kind = self.kind
            if kind == "pre":
                text = raw.strip("\n")
            elif "\t\t" in raw:  # resiliparse writes a table row as cells separated by two tabs
                kind = "tr"
                text = "\t".join(_WS.sub(" ", cell.replace("\n", " ")).strip() for cell in raw.split("\t\t"))
                text = text.strip("\t ")
            else:
                text = "\n".join(_WS.sub(" ", line.replace("\t", " ")).strip() for line in raw.split("\n")).strip()
            if text.strip():
                self.blocks.append(Block(text, kind, min(self.link_chars, len(text)), self.bullet, len(self.lists)))
                self.bullet = ""
        self.parts, self.link_chars = [], 0

    def open_item(self) -> None:
        self.kind = "li"
        if self.lists:
            self.lists[-1][1] += 1
            ordered, count = self.lists[-1]
            self.bullet = f"{count}." if ordered else "•"
        else:
            self.bullet = "•"


def parse_blocks(reduced_html: str) -> list[Block]:
    """Blocks of resiliparse's reduced-HTML output, in page order.

    Newlines outside links and <pre> separate blocks (resiliparse writes one block-level element
    per line); one <br> is a line break inside a block, two of them a paragraph break.
    """
    r = _BlockReader()
    in_link = in_pre = False
    breaks = 0
    for match in _TAG.finditer(reduced_html):
        closing, tag, text = match.groups()
        if text is not None:
            text = html_lib.unescape(text) if "&" in text else text
            if in_pre:
                r.parts.append(text)
            elif in_link:
                text = text.replace("\n", " ")
                r.link_chars += len(text.strip())
                r.parts.append(text)
                breaks = 0
            else:
                for i, line in enumerate(text.split("\n")):
                    if i and not breaks:
                        r.flush()
                    if line.strip():
                        r.parts.append(line)
                        breaks = 0
            continue
        tag = tag.lower()
        if tag == "a":
            in_link = not closing
        elif tag == "br":
            breaks += 1
            if breaks >= 2:
                r.flush()
            else:
                r.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            r.flush()
            breaks = 0
            r.kind = "text"
            if tag == "pre":
                in_pre = not closing
                r.kind = "pre" if in_pre else "text"
            elif tag in ("ul", "ol"):
                if not closing:
                    r.lists.append([tag == "ol", 0])
                elif r.lists:
                    r.lists.pop()
            elif tag == "li":
                if not closing:
                    r.open_item()
            elif not closing:
                r.kind = tag
    r.flush()
    return r.blocks


def _is_boilerplate(block: Block) -> bool:
    if block.kind == "pre":
        return False
    n = len(block.text)
    if block.link_density > MAX_LINK_DENSITY and n < 400:
        return True
    return n < BOILERPLATE_MAX_CHARS and _BOILERPLATE.search(block.text) is not None


def _is_content(block: Block) -> bool:
    n = len(block.text)
    if block.kind == "pre":
        return True
    if block.link_density > 0.3:
        return False
    return n >= LONG or (n >= 2 * SHORT and block.text.rstrip()[-1:] in _SENTENCE_END)


def select(blocks: list[Block]) -> list[bool] | None:
    """Which blocks to keep; None when no block looks like content (the caller falls back)."""
    n = len(blocks)
    labels = ["bad" if _is_boilerplate(b) else "good" if _is_content(b) else "short" for b in blocks]
    goods = [i for i, lab in enumerate(labels) if lab == "good"]
    if not goods:
        return None
    first, last = goods[0], goods[-1]
    # short blocks between content blocks keep the class of their neighbourhood
    keep = [False] * n
    prev_good = None
    for i in range(first, last + 1):
        lab = labels[i]
        if lab == "good":
            keep[i] = True
            prev_good = i
        elif lab == "short":
            nxt = next((j for j in range(i + 1, last + 1) if labels[j] != "short"), last)
            keep[i] = labels[nxt] == "good" or (prev_good is not None and labels[i - 1] != "bad")
    # headings (and a short lead-in) right before the first content block: the title
    i = first - 1
    while i >= 0 and labels[i] == "short" and (blocks[i].kind in _HEADINGS or first - i <= 2):
        keep[i] = True
        i -= 1
    return keep


def render(blocks: list[Block], keep: list[bool] | None = None, markdown: bool = False) -> str:
    """Plain text (or Markdown): a blank line between blocks; list items and table rows one per line."""
    out: list[str] = []
    prev = ""
    for block, kept in zip(blocks, keep or [True] * len(blocks)):
        if not kept:
            continue
        text, kind = block.text, block.kind
        indent = "  " * max(0, block.depth - 1)
        if kind == "li":
            if block.bullet:
                bullet = block.bullet if block.bullet != "•" or not markdown else "-"
                text = f"{indent}{bullet} {text}"
            else:
                text = indent + "  " + text
            text = text.replace("\n", "\n" + indent + "  ")
        elif kind == "tr":
            cells = text.split("\t")
            text = ("| " + " | ".join(cells) + " |") if markdown else " | ".join(cells)
            if markdown and prev != "tr":
                text += "\n|" + " --- |" * len(cells)
        elif markdown and kind in _HEADINGS:
            text = "#" * int(kind[1]) + " " + text.replace("\n", " ")
        elif markdown and kind == "pre":
            text = "```\n" + text + "\n```"
        if out:
            out.append("\n" if kind == prev and kind in ("li", "tr") else "\n\n")
        out.append(text)
        prev = kind
    return "".join(out)
