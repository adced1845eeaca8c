"""HTML -> main text with resiliparse, after charset detection.

Charset order (what browsers and CC pipelines effectively do): a byte-order mark; UTF-8 when the
bytes are valid UTF-8; the HTTP header's charset when it decodes the bytes cleanly; otherwise
resiliparse's detector (meta tags + content statistics). Decoding never fails: undecodable bytes
are dropped rather than crashing a record.

Main content: resiliparse's main-content pass (C/Rust). When it keeps almost nothing of a page's
visible text (a wrapper whose class looks like boilerplate takes the whole article with it), the
page falls back to its whole visible text and says so (`Extraction.fallback`): wcxb-dev token F1
0.790 -> 0.825 for ~5% more time. Markdown output (opt-in) reads resiliparse's reduced HTML back
as blocks (`filters.extract_blocks`: headings, lists, tables, fenced code).

Measured and not adopted (wcxb-dev, 5 folds grouped by site): a block classifier over those
blocks (length, link density, punctuation, position, neighbours, tag, boilerplate phrases, hashed
words) keeps F1 at 0.820-0.822 against 0.825 (block ROC-AUC 0.78-0.80: precision bought with the
same recall); on fallback pages 0.618 -> 0.640, +0.002 overall. Keeping only the blocks that the
ground truth marks as content would give 0.890: the signal resiliparse's reduced HTML still
carries is not enough to find them.

Before the main-content pass, elements that are boilerplate by their markup are removed
(`BOILERPLATE_SELECTORS`: HTML5 footer/nav/aside and their ARIA landmark roles and the
pre-HTML5 `#footer`/`.footer`, and the comment forms and comment lists of blog
and news software: WordPress, Disqus). resiliparse keeps many of them when they sit inside the
content wrapper. Measured on the dev sets (token F1, wcxb-dev | trafilatura-eval): none
0.825 | 0.851; footer/nav/aside 0.831 | 0.855 (every WCXB page type up); + comment forms
0.831 | 0.865 (trafilatura-eval precision 0.755 -> 0.779); + comment lists 0.835 | 0.865 (article
0.918 -> 0.924, forum unchanged), same speed; + ARIA navigation/contentinfo/complementary roles and
#footer/.footer 0.836 | 0.867 (collection 0.656 -> 0.662, no page type down). A bare `#comments`
is not in the list: forum software puts the thread's posts there (forum 0.740 -> 0.680 with it;
removed only when under 30% of the page: +0.001 for 20% more time; only on `og:type` article
pages: one forum page 0.85 -> 0.21).
After the main-content pass (VERSION 6; fallback text too since VERSION 7) the text is trimmed at two anchors: what
precedes the line that is the page's <title> (whole, or one part of it between separators:
"Repotting an orchid | Garden blog") when that is at most half the text (breadcrumbs, promotion
banners, "skip to content"), and what follows a line that opens a trailing recommendation block
("Related posts", "You may also like": `TAIL_HEADING`) within the last 30%. wcxb-dev |
trafilatura-eval: 0.836 | 0.867 -> title 0.837 | 0.870, tail 0.837 | 0.867, both 0.838 | 0.871
(product 0.571 -> 0.579, article 0.924 -> 0.927, no page type down); within +-0.002 per type for a
title share of 0.3 and a tail share of 0.2 or 0.5. The page's only <h1> as the anchor scored
+0.001 more (product 0.582) but finding it costs ~160 us a page (a walk of the DOM; the <title> is
5 us): ~7% of the extraction, which the 10x speed margin over trafilatura cannot pay. The first of
several <h1>s: forum 0.744 -> 0.740; prepending an <h1> the text lacks: -0.001. Tail headings
tried beside `TAIL_HEADING`: comment counts and "Leave a reply" (forum 0.743 -> 0.741, listing
0.656 -> 0.654), "Reviews"/"Customer reviews" (product 0.579 -> 0.583, service 0.817 -> 0.816; not
adopted: on many shops the reviews are the page's content).
VERSION 7 (wcxb-dev | trafilatura-eval, from 0.838 | 0.871): the text also ends at its last line of
prose: a trailing run of lines under 60 characters that are not list items, table rows or code
(bylines, dates, tag lists, "Back to top", copyright) goes when it is at most 20% of the text:
0.839 | 0.886 (article 0.929, forum 0.745, product 0.582; the cost: a short last post of a thread,
"Topic locked.", goes too); a plateau, 40-120 characters and 10-30% all within +-0.002 | +-0.003
(bullet lines kept or not: same; ending the run at sentence punctuation: 0.839 | 0.887).
`TAIL_HEADING` gained "About the author", "Tags", "Share", newsletter/subscribe and the same
headings in German, French, Spanish, Italian, Portuguese, Dutch and Polish (the usual phrasings):
+0.001 | +0.005; the list extended by headings read off the dev pages' tails ("Meistgelesen", "Mehr
aus ...") scored +0.004 more on trafilatura-eval, a memory of those pages, not adopted; "See also"
left it (on wikis and in documentation it is content: documentation 0.904 -> 0.905). Trimming
fallback text too: 0.841 | 0.891, every type up or equal (VERSION 7 as shipped). A higher
FALLBACK_SHARE trades types: 0.15 gives 0.843 | 0.890 (collection 0.666 -> 0.678, listing 0.657 ->
0.668, product 0.583 -> 0.578), 0.2 gives 0.844 | 0.888 (documentation 0.905 -> 0.912, product
0.578): not adopted. The same rule at the start of the text (leading short lines: bylines, dates,
photo credits): +0.000-0.001 | +0.003 with service and collection -0.001: not adopted.
VERSION 8 (from 0.841 | 0.891): plain-text table rows (cells split by tabs) end the trailing short-
line run like list items (VERSION 7 cut a table that ended the text; same figures, trafilatura-eval
recall 0.963 -> 0.964); and a run of lines that all repeat earlier lines goes when it holds 3 or
more lines or 200 or more characters (`_without_repeated_runs`: a description printed once per
layout, a quoted post; list items, table rows and code never count): 0.845 | 0.891 (forum 0.745 ->
0.761, product 0.583 -> 0.596, collection 0.666 -> 0.674, listing 0.657 -> 0.662, service 0.818 ->
0.822, article 0.930 -> 0.932, documentation 0.905 -> 0.905). 2 lines: 0.846 (product 0.600), but a
forum post's repeated "user name, Reply" pair goes too; 3 lines or 100 characters, 4 lines or 300:
0.845-0.846. Every repeated prose line (no run): 0.847 with documentation 0.903; repeats of list
items and code counted too: documentation 0.898-0.901 (code lines and wiki summaries recur in the
ground truth).
VERSION 9 (from 0.845 | 0.891): repeated list items, table rows and code go with a run of repeated
prose instead of breaking it (a description with a bullet list printed twice), and repeated runs go
before the trims (so a trailing short-line cut cannot leave half of a repeated run behind): 0.846 |
0.892 (product 0.596 -> 0.600, article 0.932 -> 0.933, forum 0.761 -> 0.762, service 0.822 ->
0.823, no type down).
VERSION 10 (from 0.846 | 0.892): the cookie-consent banners and newsletter sign-ups of the common
WordPress plugins, OneTrust and Mailchimp are removed by their element ids (a banner resiliparse
kept, or took as the page's main content): 0.8462 | 0.8918 -> 0.8484 | 0.8927 (forum 0.762 -> 0.774, listing 0.662 ->
0.677; 16 pages up, 1 down); widgets injected by script (Cookiebot, CookieYes, Osano) are not in
the served HTML, and the WordPress comment-form parts nested in `#respond` (`.comment-respond`,
`.comment-notes`, `#reply-title`) and the empty `#disqus_thread` left the list (no page's text
changed without them; each selector costs ~12 us a page). And a heading that names a
recommendation block (`BLOCK_HEADING`) cuts within the last half of the text, while labels that also
stand for links and buttons ("Read more", "Share", "Tags", "Lesen Sie auch") keep the last 30%:
0.8487 | 0.8938 (product 0.600 -> 0.602, article 0.933 -> 0.933; 3 pages up, 1 down). Every heading
within the last half: 0.8480 | 0.8933 with 8 pages up and 11 down ("Read more", "Share" mid-page);
block headings within the last 40% or 70%: 0.8486 | 0.8935 and 0.8485 | 0.8942 (service 0.823 -> 0.821).
A photo-credit line rule ("Foto: ...", "Bild via", "©"): 0.8487 | 0.8948, 21 pages up and 8 down on
WCXB: not adopted.
VERSION 11 (from 0.8487 | 0.8938): resiliparse's main-content pass drops every <ul> whose link text
is more than about a fifth of its text, at any depth and whatever its class, role or <main>/<article>
ancestor (<ol>, <dl>, <menu> and tables are kept), so to-do, reference and API lists whose items each
carry a link went. An innermost <ul> with 12 characters an item outside its links, styles and scripts
(CONTENT_LIST_ITEM_CHARS) has its links replaced by their text when it sits beside a paragraph of 40
characters or inside <main>/<article>: 0.8529 | 0.8934 (P 0.843 -> 0.841, R 0.907 -> 0.915;
documentation 0.905 -> 0.916, listing 0.676 -> 0.691, collection 0.674 -> 0.691, article 0.933 ->
0.936, service 0.823 -> 0.825, product 0.602, forum 0.774 -> 0.772; trafilatura-eval FP snippets
574 -> 583, FN 103 -> 98; 1.01x VERSION 10's time). Without the placement condition: 0.8531 | 0.8917
(FP 595: related-post lists with excerpts); with only a paragraph beside it 0.8506 | 0.8937, only
<main>/<article> 0.8517 | 0.8939 (documentation 0.911); keeping only lists whose items do not open
with their link: 0.8505 | 0.8933; without the placement condition, 8 or 20 characters an item:
0.8527 | 0.8917 and 0.8524 | 0.8926.
The boilerplate query now runs once (`.values()`: each index into a resiliparse DOMCollection runs
its query again), which pays for the list check.
VERSION 12 (from 0.8529 | 0.8934): on a page whose og:type is article, every element after the
article body goes (related posts, comments, promotions), the body being the outermost match of
ARTICLE_BODY_SELECTORS when all matches nest one inside the other and it holds 500 characters:
0.8542 | 0.9002 (P 0.841 -> 0.844, R 0.9153 -> 0.9151; article 0.9355 -> 0.9378, service 0.8252 ->
0.8256, collection 0.6908 -> 0.6918, the other types unchanged; 55 pages up, 2 down;
trafilatura-eval FP snippets 583 -> 532, FN 98 -> 100; 1.00x-1.06x VERSION 11's time). Without the
og:type condition: 0.8542 | 0.9018 but forum 0.7722 -> 0.7705; the innermost match: 0.8538 | 0.9010;
no minimum: 0.8534 | 0.9002 (a 31-character teaser container cut one page to F1 0.05); a 200-character
minimum: 0.8542 | 0.9002; `articleBody` alone: 0.8524 | 0.8959; `.entry-content` alone: 0.8534 |
0.8972; without `article` and the og:type condition: 0.8518 | 0.8999.
Tried and not adopted, each as an addition: forms (forum 0.668), widget/sidebar classes
(content wrappers carry them too: 0.743 | 0.815 overall, article 0.805), captions (collection
0.656 -> 0.636), any class with cookie/consent/newsletter in it (article 0.917 -> 0.896), author boxes,
related posts, share bars, breadcrumbs, post meta (each within +-0.001), exact-match lines of
shop and UI labels ("Add to cart", "Read more", "Reply": within +-0.003), `[role=banner]` (listing
0.653 -> 0.650), `[hidden]`/`aria-hidden` (collection 0.662 -> 0.644, product 0.571 -> 0.558:
sliders and tabs hide content until clicked), screen-reader-only text (within +-0.001), and
cutting the page to its single article-body container (`articleBody`, `.entry-content`, ...:
0.799 | 0.864, recall 0.913 -> 0.865: titles, lead paragraphs and galleries sit outside it).
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import DOMNode, HTMLTree

from filters.extract_blocks import parse_blocks, render

# Bump when a change to this module changes the text it gives: stored runs then extract again.
VERSION = 12

# Removed before the main-content pass (see the module docstring for what each group measured).
BOILERPLATE_SELECTORS = (
    "footer", "nav", "aside", '[role="navigation"]', '[role="contentinfo"]', '[role="complementary"]',
    "#footer", ".footer",
    "#respond", "#commentform", ".comment-form", ".nocomments", ".akismet_comment_form_privacy_notice",
    ".comments-area", "#comments-title", ".comments-title", ".comment-list", ".commentlist",
    # Cookie-consent banners and newsletter sign-ups of the common WordPress plugins, OneTrust and
    # Mailchimp (by their element ids: a class or id that merely contains "cookie" is too broad).
    "#cookie-notice", "#eu-cookie-law", "#cookie-law-info-bar", "#cookie-law-info-again",
    "#moove_gdpr_cookie_info_bar", "#onetrust-consent-sdk", "#mc_embed_signup", "#subscribe-blog",
    ".jetpack_subscription_widget",
)
_BOILERPLATE_QUERY = ", ".join(BOILERPLATE_SELECTORS)
# resiliparse's main-content pass drops every <ul> whose link text is more than about a fifth of its
# text, at any depth (<ol>, <dl> and tables are kept): content lists whose items each carry a link go
# with it (to-do lists, references, API lists). An innermost <ul> with at least
# CONTENT_LIST_ITEM_CHARS of text outside its links per item keeps its links as plain text, when it
# sits beside a paragraph of at least CONTENT_LIST_PARAGRAPH_CHARS or inside <main> or <article>
# (a related-posts list with excerpts in a sidebar does neither).
CONTENT_LIST_ITEM_CHARS = 12
CONTENT_LIST_PARAGRAPH_CHARS = 40
_PRUNE_AND_LIST_QUERY = _BOILERPLATE_QUERY + ", ul"
# A page that declares itself an article (og:type) ends with its article body: related posts,
# comments and promotions after it go, when the matches of these selectors nest one inside the
# other (the body is the outermost) and the body holds ARTICLE_BODY_MIN_CHARS (a teaser container
# must not cut the page).
ARTICLE_BODY_SELECTORS = (
    '[itemprop="articleBody"]', ".entry-content", ".article-body", ".post-content", ".article__body",
    ".story-body", "article",
)
ARTICLE_BODY_MIN_CHARS = 500
_ARTICLE_BODY_QUERY = ", ".join(ARTICLE_BODY_SELECTORS)
_ARTICLE_TYPE_QUERY = 'meta[property="og:type"]'
_LINK_OR_CODE_MARKUP = re.compile(r"<(a|style|script)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_TAG_MARKUP = re.compile(r"<[^>]*>")
_BLANK_MARKUP = re.compile(r"\s+|&nbsp;")

# Main content is accepted unless it holds less than this share of the page's visible text; the
# whole text is only extracted (a second pass) when the main content is shorter than CHECK_CHARS.
FALLBACK_SHARE = 0.1
FALLBACK_CHECK_CHARS = 2000

# The text is trimmed at two anchors: the text before the line that is the page's <title> (or a
# part of it) when it is at most TITLE_CUT_SHARE of the text, and the text from a line that opens a
# trailing recommendation block: a heading that names the block ("You may also like", "Related
# posts": BLOCK_HEADING) when it is at most BLOCK_CUT_SHARE of the text, a label that may also be a
# link or a button ("Read more", "Share": TAIL_HEADING) when it is at most TAIL_CUT_SHARE.
TITLE_CUT_SHARE = 0.5
BLOCK_CUT_SHARE = 0.5
TAIL_CUT_SHARE = 0.3
TAIL_HEADING_MAX_CHARS = 60  # a heading is a short line
BLOCK_HEADING = re.compile(
    r"(related (articles|posts|stories|content|products|reading)"
    r"|you (may|might) also (like|enjoy|be interested in)|recommended (articles|reading)"
    r"|more (stories|articles|news|posts)( from .*)?|popular (posts|articles|stories)"
    r"|customers (also|who) .*|further reading|similar (products|items|posts|articles)|more like this"
    r"|about the author"
    # The same headings in the languages most common in Common Crawl after English.
    r"|(das|dies) könnte (sie|dich|euch) (auch|ebenfalls) interessieren:?"
    r"|mehr zum thema( .*)?|weitere (artikel|beiträge|themen|nachrichten|meldungen|news|inhalte)( .*)?"
    r"|(ähnliche|verwandte|passende) (artikel|beiträge|themen)|beliebte (artikel|beiträge)"
    r"|empfohlene (artikel|beiträge)|über den autor|zum autor"
    r"|sur le même (sujet|thème)|articles? (similaires|liés|connexes)|vous aimerez aussi"
    r"|vous (pourriez|pouvez) aussi aimer|dans la même rubrique|à découvrir (aussi|également)"
    r"|à propos de l'auteur"
    r"|(también )?te puede interesar:?|(artículos|noticias|entradas|publicaciones) relacionad[ao]s"
    r"|quizás te interese|sobre el autor"
    r"|articoli correlati|(ti )?potrebbe (interessarti|anche interessarti)( anche)?|post correlati"
    r"|(artigos|notícias|posts) relacionad[oa]s|você (também )?pode gostar"
    r"|sobre o autor|gerelateerde artikelen|dit vind je misschien ook leuk"
    r"|podobne artykuły)")  # matched against the lowercased line: faster than IGNORECASE
# Labels that open such a block too, but also stand for a link, a button or a sidebar box ("Read
# more", "Share", "Lesen Sie auch: <link>" in mid-article).
TAIL_HEADING = re.compile(
    r"(related( (items|links))?|recommended( for you)?|trending( now)?|read (next|more)"
    r"|also on .*|latest (posts|news|articles)|recent posts|most popular|share this( article| post)?:?"
    r"|tags?:?|share:?|newsletter|sign up for our newsletter|subscribe"
    r"|auch interessant:?|(lesen sie|lies) auch:?|neueste (artikel|beiträge)|schlagworte:?|artikel teilen"
    r"|newsletter abonnieren|(à )?lire aussi:?|articles? récents|(lee|mirá|lea) también:?|te recomendamos"
    r"|más noticias|leggi anche:?|altri articoli|(leia|veja) também:?|lees ook:?|meer nieuws|ook interessant:?"
    r"|czytaj (też|także|również):?|polecane( artykuły)?|przeczytaj (też|także|również):?)")
# The text ends at its last line of prose: a trailing run of lines shorter than SHORT_LINE_CHARS
# (dates, bylines, tag and link lists, "Back to top") is dropped when it is at most SHORT_TAIL_SHARE
# of the text. List items, table rows (Markdown, or plain cells split by tabs), code and indented
# lines end the run: they are content.
SHORT_LINE_CHARS = 60
SHORT_TAIL_SHARE = 0.2
_CONTENT_LINE = re.compile(r"\s|[•*|`>-]|\d+[.)]\s|.*(\t|[={};<>\[\]]|\w\()")
# A run of lines that all repeat earlier lines (a product description printed twice for two
# layouts, a quoted forum post) is dropped when it holds at least REPEAT_RUN_LINES lines or
# REPEAT_RUN_CHARS characters of prose; list items, table rows, code and indented lines go with
# such a run but never make one (table headers and code lines recur by design).
REPEAT_RUN_LINES = 3
REPEAT_RUN_CHARS = 200
_TITLE_SEPARATORS = re.compile(r"\s+[|\-\u2013\u2014:\u00b7\u00bb]+\s+")

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
    """Bytes -> str with `detect_charset`; invalid sequences are dropped, never raised. Valid
    UTF-8 without a byte-order mark (most pages) is decoded once, not checked and then decoded:
    ~80 us a page on the dev pages, 3% of the extraction."""
    if not data.startswith(tuple(bom for bom, _ in _BOMS)):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return bytes_to_str(data, detect_charset(data, declared), errors="ignore")


@dataclass(frozen=True, slots=True)
class Extraction:
    """The text of a page (None: no text at all) and whether no main content was found, so the
    text is the page's whole visible text."""

    text: str | None
    fallback: bool = False


def _prune_boilerplate(tree: HTMLTree) -> None:
    """Remove the elements that are boilerplate by their markup (BOILERPLATE_SELECTORS) and unlink
    the content lists the main-content pass would drop, in place."""
    if tree.body is None:
        return
    lists = []
    # .values() runs the query once: each index into a DOMCollection runs it again.
    for element in tree.body.query_selector_all(_PRUNE_AND_LIST_QUERY).values():
        if element.tag == "ul":
            lists.append(element)
        else:
            element.decompose()
    body = _article_body(tree)
    if body is not None:
        _drop_following(body, tree.body)
        lists = tree.body.query_selector_all("ul").values()  # the dropped lists are gone
    for ul in lists:
        if ul.parent is not None and ul.query_selector("ul") is None and _is_content_list(ul):
            for anchor in ul.query_selector_all("a").values():
                anchor.replace_with(tree.create_text_node(anchor.text))


def _article_body(tree: HTMLTree) -> DOMNode | None:
    """The article body of a page whose og:type is article: the outermost ARTICLE_BODY_SELECTORS
    match, when every match nests inside the one before it and it holds ARTICLE_BODY_MIN_CHARS
    (None otherwise: no body, or several candidates side by side)."""
    if tree.head is None:
        return None
    og_type = tree.head.query_selector(_ARTICLE_TYPE_QUERY)
    if og_type is None or (og_type.getattr("content") or "").strip().lower() != "article":
        return None
    matches = tree.body.query_selector_all(_ARTICLE_BODY_QUERY).values()
    if not matches:
        return None
    for outer, inner in zip(matches, matches[1:]):
        if not outer.contains(inner):
            return None
    body = matches[0]
    return body if len(body.text) >= ARTICLE_BODY_MIN_CHARS else None


def _drop_following(node: DOMNode, root: DOMNode) -> None:
    """Remove every element after `node` within `root`: its following siblings and those of each
    ancestor below `root`."""
    while node is not None and node != root:
        sibling = node.next_element
        while sibling is not None:
            following = sibling.next_element
            sibling.decompose()
            sibling = following
        node = node.parent


def _is_content_list(ul: DOMNode) -> bool:
    """Whether `ul` (a list with no list inside) is content, not links: its items hold text outside
    their links, styles and scripts (CONTENT_LIST_ITEM_CHARS each) and it sits in running text or
    in <main>/<article>."""
    markup = ul.html
    min_chars = CONTENT_LIST_ITEM_CHARS * max(1, markup.count("<li"))
    if len(ul.text) < min_chars or "<a" not in markup:
        return False
    unlinked = _TAG_MARKUP.sub("", _LINK_OR_CODE_MARKUP.sub("", markup))
    if len(_BLANK_MARKUP.sub("", unlinked)) < min_chars:
        return False
    sibling = ul.parent.first_child
    while sibling is not None:
        if sibling.tag == "p" and len(sibling.text) >= CONTENT_LIST_PARAGRAPH_CHARS:
            return True
        sibling = sibling.next
    ancestor = ul.parent
    while ancestor is not None and ancestor.tag not in ("main", "article", "body"):
        ancestor = ancestor.parent
    return ancestor is not None and ancestor.tag != "body"


def _squash(text: str) -> str:
    """`text` with its whitespace runs as single spaces: how a heading reads as a line of output."""
    return " ".join(text.split())


def _reads_as(line: str, markdown: bool) -> str:
    """`line` as a heading of the page reads (a Markdown heading without its #s)."""
    return _squash(line.lstrip("#") if markdown else line)


def _title_lines(tree: HTMLTree) -> set[str]:
    """How the page's title can read as a line of its text: its <title> whole or one part of it
    between separators ("Repotting an orchid | Garden Blog")."""
    title = _squash(tree.title or "")
    return {part for part in (title, *_TITLE_SEPARATORS.split(title)) if len(part) >= 4}


def _line_at(text: str, i: int) -> tuple[int, int]:
    """(start, end) of the line of `text` that holds position `i`."""
    end = text.find("\n", i)
    return text.rfind("\n", 0, i) + 1, len(text) if end < 0 else end


def _title_offset(text: str, titles: set[str], markdown: bool, limit: float) -> int:
    """Where the first line that reads as one of `titles` starts, when at most `limit` characters
    precede it; else 0."""
    found = []
    for title in titles:
        stop = int(limit) + len(title)
        i = text.find(title, 0, stop)
        while i >= 0:
            start, end = _line_at(text, i)
            if _reads_as(text[start:end], markdown) == title:
                found.append(start)
                break
            i = text.find(title, i + 1, stop)
    return min(found, default=0)


def _tail_offset(text: str, start: int, markdown: bool) -> int:
    """Where the earliest line that opens a recommendation block starts: a BLOCK_HEADING among the
    last BLOCK_CUT_SHARE of text[start:] or a TAIL_HEADING among its last TAIL_CUT_SHARE; else
    len(text)."""
    newline = text.find("\n", max(len(text) - int(BLOCK_CUT_SHARE * (len(text) - start)) - 1, start))
    if newline < 0:
        return len(text)
    offset, labels_from = newline + 1, len(text) - TAIL_CUT_SHARE * (len(text) - start)
    for line in text[offset:].split("\n"):
        if len(line) < TAIL_HEADING_MAX_CHARS:
            heading = _reads_as(line, markdown).lower()
            if BLOCK_HEADING.fullmatch(heading) or (offset >= labels_from and TAIL_HEADING.fullmatch(heading)):
                return offset
        offset += len(line) + 1
    return len(text)


def _prose_end(text: str) -> int:
    """Where `text` ends without its trailing run of short lines (SHORT_LINE_CHARS) that are not
    list items, table rows, code or indented, when that run is at most SHORT_TAIL_SHARE of it."""
    end, limit = len(text), len(text) * (1 - SHORT_TAIL_SHARE)
    while end > limit:
        newline = text.rfind("\n", 0, end)
        if newline < 0:
            return len(text)
        line = text[newline + 1:end]
        if line.strip() and (len(line) >= SHORT_LINE_CHARS or _CONTENT_LINE.match(line)):
            return end
        end = newline
    return len(text)


def _without_repeated_runs(text: str) -> str:
    """`text` without the runs of lines that repeat earlier lines (REPEAT_RUN_LINES,
    REPEAT_RUN_CHARS of prose: repeated list items, table rows and code go with a run but do not
    make one); blank lines inside and after a run go with it. Set and dict operations find
    the repeats: ~40% of pages have none (one set, then the text as it came), the rest ~2% of the
    extraction."""
    lines = text.split("\n")
    if len(lines) - len(set(lines)) == max(lines.count("") - 1, 0):
        return text
    first = {line: i for i, line in zip(range(len(lines) - 1, -1, -1), reversed(lines))}
    repeats = [i for i, line in enumerate(lines) if line.strip() and first[line] != i]
    drop: list[tuple[int, int]] = []
    start = 0
    for k, i in enumerate(repeats):
        nxt = repeats[k + 1] if k + 1 < len(repeats) else None
        if nxt is not None and not any(line.strip() for line in lines[i + 1:nxt]):
            continue  # the run goes on
        run = repeats[start:k + 1]
        counted = [j for j in run if not _CONTENT_LINE.match(lines[j])]
        if len(counted) >= REPEAT_RUN_LINES or sum(len(lines[j].strip()) for j in counted) >= REPEAT_RUN_CHARS:
            end = run[-1] + 1
            while end < len(lines) and not lines[end].strip():
                end += 1  # and the blank lines after it, so no gap of two blank lines is left
            drop.append((run[0], end))
        start = k + 1
    for begin, end in reversed(drop):
        del lines[begin:end]
    return "\n".join(lines).rstrip()


def _trim_to_title_and_tail(text: str, tree: HTMLTree, markdown: bool) -> str:
    """`text` without what precedes the page's title, what follows a heading that opens a
    trailing recommendation block (TITLE_CUT_SHARE, BLOCK_CUT_SHARE, TAIL_CUT_SHARE of the text) and its trailing
    short lines (`_prose_end`). Offsets, not a list of lines: the texts run to hundreds of
    kilobytes."""
    start = _title_offset(text, _title_lines(tree), markdown, TITLE_CUT_SHARE * len(text))
    text = text[start:_tail_offset(text, start, markdown)].strip()
    return text[:_prose_end(text)].rstrip()


def _plain(tree: HTMLTree, main_content: bool) -> str:
    """resiliparse's own plain text: blocks on their own lines, list items bulleted (fast, in C)."""
    return extract_plain_text(tree, main_content=main_content, preserve_formatting=True, alt_texts=False,
                              list_bullets=True, noscript=False).strip()


def _markdown(tree: HTMLTree, main_content: bool) -> str:
    """The reduced HTML of resiliparse's pass, read back as blocks and written as Markdown."""
    reduced = extract_plain_text(tree, main_content=main_content, preserve_formatting="minimal_html", links=True,
                                 alt_texts=False, list_bullets=True, noscript=False)
    return render(parse_blocks(reduced), markdown=True).strip()


def extract(html: bytes | str, *, main_content: bool = True, encoding: str | None = None,
            markdown: bool = False) -> Extraction:
    """Extract readable text from an HTML page (see `html_to_text`), with the fallback flag.

    Plain text comes straight from resiliparse; Markdown goes through `filters.extract_blocks`
    (~30% slower on the dev pages, so it is the opt-in path). The fallback check extracts the
    whole text only for short main content (under FALLBACK_CHECK_CHARS), from the pruned page, or
    from the page as it came when pruning left no text at all (a page that is only navigation).
    The text (main content or fallback) then loses the runs of lines it already holds
    (`_without_repeated_runs`) and is trimmed to start at the page's title and to end before a
    trailing "related" heading and trailing short lines (`_trim_to_title_and_tail`)."""
    if isinstance(html, bytes):
        html = decode_html(html, encoding)
    if not html or not html.strip():
        return Extraction(None)
    tree = HTMLTree.parse(html)
    if main_content:
        _prune_boilerplate(tree)
    to_text = _markdown if markdown else _plain
    text = to_text(tree, main_content)
    fallback = False
    if main_content and len(text) < FALLBACK_CHECK_CHARS:
        whole = to_text(tree, False) or to_text(HTMLTree.parse(html), False)
        if len(text) < FALLBACK_SHARE * len(whole):
            text, fallback = whole, True
    if main_content and text:
        text = _trim_to_title_and_tail(_without_repeated_runs(text), tree, markdown)
    return Extraction(text or None, fallback and bool(text))


def html_to_text(html: bytes | str, *, main_content: bool = True, encoding: str | None = None,
                 markdown: bool = False) -> str | None:
    """Extract readable text from an HTML page.

    `html` as bytes is decoded with charset detection (`encoding` is a declared charset hint, e.g.
    from the HTTP header). Blocks and list items are on their own lines (list items bulleted),
    pre-formatted text keeps its line breaks: line-based quality rules (Gopher, C4, FineWeb) need
    them. `markdown` writes headings, lists, tables and code blocks as Markdown instead. Returns
    None when the page has no text.
    """
    return extract(html, main_content=main_content, encoding=encoding, markdown=markdown).text
