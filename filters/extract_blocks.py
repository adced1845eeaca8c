"""resiliparse's reduced HTML read back as text blocks, and written as plain text or Markdown.

resiliparse (C/Rust, fast) removes the obvious boilerplate elements (nav, header, footer, asides,
hidden elements) and writes the rest as reduced HTML: headings, paragraphs, lists, pre-formatted
text, table cells, line breaks and links. `parse_blocks` reads that string back as `Block`s (tag
kind, list bullet and depth, link characters) and `render` writes them with one block per
paragraph, one list item or table row per line, fenced code and `#` headings in Markdown.

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


@dataclass(slots=True)
class Block:
    """One text block of the page: its text, tag kind and how much of it is link text."""

    text: str
    kind: str          # "h1".."h6", "li", "tr" (table row, cells split by tabs), "p", "pre" or "text"
    link_chars: int
    bullet: str = ""   # first block of a list item: "•" or its number ("3."); "" otherwise
    depth: int = 0     # list nesting depth


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
