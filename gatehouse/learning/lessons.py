"""Lesson text: Markdown (CommonMark plus tables) to HTML that is safe to show inside the portal.

An author may write raw HTML (`<figure>`, `<video>`); the sanitiser keeps a short list of tags and attributes
and drops scripts, styles, event handlers, iframes and every URL scheme but http, https and mailto.
References into the package's `media/` folder go through `media_url`, so the portal serves them itself;
absolute links to other sites stay links and the gateway decides them when they are followed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "table", "thead", "tbody", "tr",
    "th", "td", "em", "strong", "code", "pre", "blockquote", "a", "img", "audio", "video", "source", "figure",
    "figcaption",
}
ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title"}, "audio": {"src", "controls"},
    "video": {"src", "controls", "poster"}, "source": {"src", "type"}, "th": {"align"}, "td": {"align"},
    "ol": {"start"},
}
URL_ATTRIBUTES = {"href", "src", "poster"}
SCHEMES = {"http", "https", "mailto"}
VIDEO = {".mp4": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg"}
AUDIO = {".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav", ".m4a": "audio/mp4"}
_HTML_URL = re.compile(r"""\b(?:src|href|poster)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True, slots=True)
class Reference:
    """A URL a lesson names, with the line of the block it is in (1-based, in the lesson file)."""

    target: str
    line: int


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def media_path(target: str) -> str | None:
    """The package path (`media/...`) a relative reference names, or None for an absolute URL or an anchor."""
    if not target or target.startswith("#") or target.startswith("//") or _SCHEME.match(target):
        return None
    return target.split("#", 1)[0].split("?", 1)[0]


def check_reference(target: str) -> str | None:
    """Why a relative reference cannot be served from the package, or None when it can (or is not relative)."""
    path = media_path(target)
    if path is None:
        return None
    if path.startswith("/") or ".." in path.split("/") or "\\" in path:
        return f"{target!r} climbs out of the package; name a file under media/"
    if not posixpath.normpath(path).startswith("media/"):
        return f"{target!r} is not under media/; put the file there and link to media/..."
    return None


def _walk(tokens: list[Token]) -> Iterator[tuple[Token, int]]:
    line = 1
    for token in tokens:
        if token.map:
            line = token.map[0] + 1
        yield token, line
        for child in token.children or ():
            yield child, line


def references(markdown_text: str) -> list[Reference]:
    """Every link, image and raw-HTML URL in the lesson, for the package check."""
    found: list[Reference] = []
    for token, line in _walk(_markdown().parse(markdown_text)):
        if token.type in ("image", "link_open"):
            target = token.attrGet("src" if token.type == "image" else "href")
            if isinstance(target, str):
                found.append(Reference(target, line))
        elif token.type in ("html_block", "html_inline"):
            for match in _HTML_URL.finditer(token.content):
                found.append(Reference(next(g for g in match.groups() if g is not None), line))
    return found


def title(markdown_text: str) -> str | None:
    """The text of the first first-level heading, or None."""
    tokens = _markdown().parse(markdown_text)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1":
            return tokens[index + 1].content.strip() or None
    return None


def _media_players(tokens: list[Token]) -> None:
    """`![caption](media/clip.mp4)` becomes a video (or audio) player with the caption as its fallback text."""
    for token, _line in _walk(tokens):
        if token.type != "image":
            continue
        src = str(token.attrGet("src") or "")
        extension = posixpath.splitext(media_path(src) or "")[1].lower()
        kind, mime = ("video", VIDEO[extension]) if extension in VIDEO else (
            ("audio", AUDIO[extension]) if extension in AUDIO else ("", ""))
        if kind:
            token.type, token.tag, token.children = "html_inline", "", None
            token.content = (f'<{kind} controls><source src="{_quote(src)}" type="{mime}">'
                             f"{_text(token.content)}</{kind}>")


def _quote(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_lesson(markdown_text: str, media_url: Callable[[str], str]) -> str:
    """Safe HTML for the lesson; `media_url("media/pic.png")` says where the portal serves a package file."""
    md = _markdown()
    tokens = md.parse(markdown_text)
    _media_players(tokens)
    html = md.renderer.render(tokens, md.options, {})

    def url(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in URL_ATTRIBUTES:
            return value
        path = media_path(value)
        if path is None:
            return value
        if check_reference(value) is not None:
            return None  # the package check reports it; the page shows no broken or climbing link
        return media_url(posixpath.normpath(path))

    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES, attribute_filter=url,
                     link_rel="noopener noreferrer", strip_comments=True)
