"""Captions an image-text model can train on, from NASA's title, description and keywords.

NASA's descriptions are press text: HTML from some centers (JPL, Goddard), entities, photo-number
stubs ("ISS026-S-001 (June 2010) --- "), links and credit lines ("Photo Credit: (NASA/Bill
Ingalls)"). A caption keeps what describes the picture and drops the rest.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from html.parser import HTMLParser

MAX_CAPTION_CHARS = 1000

_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
               "blockquote", "table", "hr"}
_SKIPPED_TAGS = {"script", "style"}
_WHITESPACE = re.compile(r"\s+")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_LOOKS_LIKE_MARKUP = re.compile(r"<[A-Za-z/!]|&(#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")

# A paragraph that is only a credit, or one of the centers' standing boilerplate lines.
_CREDIT_LINE = re.compile(
    r"^\W*(?:(?:photo|image|video|illustration|animation)\s+)?credits?\b\s*[:\-–]", re.I
)
_BOILERPLATE_LINE = re.compile(
    r"^\W*(?:follow us on|like us on|find us on|nasa image use policy"
    r"|nasa goddard space flight center enables)", re.I
)
# Credits at the very end of the text: "Photo Credit: (NASA/Bill Ingalls)", "Credit: NASA 360",
# "Image credit: NASA/JPL-Caltech", or a bare "(NASA/Joel Kowsky)".
_TRAILING_CREDIT = re.compile(
    r"[\s(\[]*(?:(?:photo|image|video|illustration|animation)\s+)?credits?\s*:[^:]{0,150}$", re.I
)
_TRAILING_BYLINE = re.compile(r"\s*\((?=[^()]*(?:NASA|/))[^()]{1,80}\)\s*\.?\s*$")
# "STS065-05-037 (8-23 July 1994) --- " opens many JSC descriptions: the photo number, not content.
_PHOTO_NUMBER = re.compile(r"^\S*\d\S*\s*(?:\([^()]{0,60}\))?\s*-{2,}\s*")
_LINK_PHRASE = re.compile(
    r"(?:(?:for\s+)?(?:learn|read|see|find\s+out)\s+more(?:\s+(?:at|about\s+[^:]{1,60}))?"
    r"|more(?:\s+info(?:rmation)?)?|for\s+more\s+information(?:\s+[^:]{1,60})?)\s*:\s*"
    r"(?:https?://|www\.)\S+", re.I
)
_MORE_SENTENCE = re.compile(
    r"(?:^|(?<=[.!?])\s)(?:for more information|learn more|read more|more information)\b"
    r"[^.!?]*[.!?]?",
    re.I,
)
_HASHTAGS = re.compile(r"(?:\s*#\w+)+\s*$")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_END_PUNCT = ".!?"


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def _plain(value) -> str:
    """Text without tags or entities; line breaks kept (they separate paragraphs)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    for _ in range(2):  # NASA sometimes escapes twice: "&amp;amp;", "&lt;p&gt;"
        if not _LOOKS_LIKE_MARKUP.search(text):
            break
        parser = _TextExtractor()
        parser.feed(text)
        parser.close()
        text = html.unescape("".join(parser.parts))
    return _ZERO_WIDTH.sub("", text)


def _collapse(text: str) -> str:
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _WHITESPACE.sub(" ", text)).strip()


def clean_title(title) -> str:
    """A title without markup, on one line."""
    return _collapse(_plain(title))


def clean_description(description) -> str:
    """A description without markup, photo-number stub, links, credit lines or boilerplate."""
    lines = [line for line in _plain(description).splitlines()
             if not _CREDIT_LINE.match(line) and not _BOILERPLATE_LINE.match(line)]
    text = _collapse(" ".join(lines))
    text = _PHOTO_NUMBER.sub("", text)
    text = _collapse(_MORE_SENTENCE.sub("", _URL.sub("", _LINK_PHRASE.sub("", text))))
    while True:  # "... Photo Credit: (NASA/Bill Ingalls)" takes two passes
        shorter = _TRAILING_CREDIT.sub("", _HASHTAGS.sub("", text))
        shorter = _TRAILING_BYLINE.sub("", shorter).rstrip(" ,;:-–—")
        if shorter == text:
            return text
        text = shorter


def keyword_list(keywords) -> list[str]:
    """Keywords as a list of distinct clean strings; a comma-joined string is split."""
    if keywords is None or isinstance(keywords, float) and math.isnan(keywords):
        return []
    items = [keywords] if isinstance(keywords, str) else list(keywords)
    out: dict[str, str] = {}
    for item in items:
        for part in _plain(item).split(","):
            part = _collapse(part)
            if part:
                out.setdefault(part.casefold(), part)
    return list(out.values())


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def _sentence(text: str) -> str:
    return text if not text or text[-1] in _END_PUNCT else text + "."


def _bounded(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars + 1]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end >= max_chars // 2:
        return head[:end + 1]
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head[:max_chars]).rstrip(" ,;:-–—")


def caption(title, description, keywords, *, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """One caption: the title, then the description unless it only repeats the title.

    When the description adds nothing, the keywords not already in the text follow as
    "Keywords: a, b.". Markup, links and credits are removed, whitespace collapsed, and the
    result cut at a sentence (or word) boundary to at most `max_chars` characters.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    head, body = clean_title(title), clean_description(description)
    if _key(head).startswith(_key(body)):
        text, body = head, ""  # the description is the title, or a piece of it
    elif _key(body).startswith(_key(head)):
        text = body  # the description opens with the title already
    else:
        text = f"{_sentence(head)} {body}"
    if not body:
        seen = f" {_key(text)} "
        extra = [k for k in keyword_list(keywords) if _key(k) and f" {_key(k)} " not in seen]
        if extra:
            text = f"{_sentence(text)} Keywords: {', '.join(extra)}." if text else ", ".join(extra)
    return _bounded(text, max_chars)


def captions(rows: Iterable[dict]) -> list[str]:
    """`caption` of each row's title, description and keywords."""
    return [caption(r.get("title"), r.get("description"), r.get("keywords")) for r in rows]
