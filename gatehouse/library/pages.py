"""An article's HTML made safe to serve inside the portal, rebuilt token by token with the standard HTML parser.

Nothing of the ZIM runs: scripts, frames, objects, `<base>`, refreshes and every `on*` handler are dropped (the
Content-Security-Policy refuses scripts as well, should any slip through). A link that leaves the archive (an
absolute URL, a scheme, `//host`) becomes plain text with its address shown beside it, so the reader knows where
it pointed and cannot follow it; images or styles from elsewhere lose their source. The portal's bar goes in
right after `<body>`.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import urlsplit

CSP = ("default-src 'none'; script-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "font-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'; connect-src 'none'")
"""For article pages: the archive's own images, styles and fonts, nothing from elsewhere, no script at all."""

DROPPED = frozenset({"script", "noscript", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
                     "portal", "template"})
"""Elements removed with everything inside them."""
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                  "track", "wbr"})
URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "poster", "action", "formaction", "data", "background",
                            "xlink:href", "cite", "ping"})
LANGUAGES = {"eng": "en", "nld": "nl", "dut": "nl", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de"}


def leaves(url: str) -> bool:
    """Whether a link points out of the archive: any scheme or host (relative paths stay inside)."""
    value = url.strip()
    if not value or value.startswith("#"):
        return False
    parts = urlsplit(value)
    return bool(parts.scheme or parts.netloc or value.startswith("\\") or value.startswith("//"))


def html_language(code: str) -> str:
    """A ZIM's language (ISO 639-3, perhaps several with commas) as an HTML `lang`."""
    first = code.split(",")[0].strip().lower()
    return LANGUAGES.get(first, first)


class _Rewriter(HTMLParser):
    def __init__(self, bar: str, root: str, language: str) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.bar, self.root, self.language = bar, root, language
        self.skipping = 0
        self.skipped: list[str] = []
        self.anchors: list[str] = []
        """For every open <a>: the address when it left the archive (made plain text), else ''."""
        self.barred = False
        self.title = False

    def _local(self, value: str) -> str:
        """A root-absolute path of the archive ("/A/x") kept under the library's root."""
        return self.root + value.lstrip("/") if value.startswith("/") else value

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> tuple[list[tuple[str, str]], str]:
        kept: list[tuple[str, str]] = []
        external = ""
        for raw_name, raw_value in attrs:
            name, value = raw_name.lower(), raw_value or ""
            if name.startswith("on") or name in ("srcdoc", "formtarget", "target"):
                continue
            if tag == "meta" and name == "http-equiv":
                return [], "drop"
            if name in URL_ATTRIBUTES:
                if name == "srcset":
                    if any(leaves(part.strip().split(" ")[0]) for part in value.split(",")):
                        continue
                elif leaves(value):
                    if tag == "a" and name == "href":
                        external = value.strip()
                    continue
                value = self._local(value)
            if name == "style" and ("url(" in value.lower() or "expression" in value.lower()):
                continue
            kept.append((name, value))
        return kept, external

    def _open(self, tag: str, kept: list[tuple[str, str]], closed: bool) -> str:
        text = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in kept)
        return f"<{tag}{text}{' /' if closed else ''}>"

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if self.skipping:
            if tag in DROPPED and tag not in VOID and not closed:
                self.skipped.append(tag)
                self.skipping += 1
            return
        if tag in DROPPED:
            if tag not in VOID and not closed:
                self.skipped.append(tag)
                self.skipping += 1
            return
        kept, external = self._attributes(tag, attrs)
        if external == "drop":
            return
        if tag == "link" and not any(name == "href" for name, _v in kept):
            return
        if tag == "html" and self.language and not any(name == "lang" for name, _v in kept):
            kept.append(("lang", self.language))
        if tag == "a":
            self.anchors.append(external)
            if external:
                classes = " ".join(["gh-external"] + [v for n, v in kept if n == "class"])
                self.out.append(self._open("span", [("class", classes)] +
                                           [(n, v) for n, v in kept if n in ("id", "lang", "dir")], False))
                return
        self.out.append(self._open(tag, kept, closed))
        if tag == "body" and not self.barred:
            self.out.append(self.bar)
            self.barred = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, True)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipped:
                while self.skipped:
                    self.skipping -= 1
                    if self.skipped.pop() == tag:
                        break
            return
        if tag in DROPPED or tag in VOID:
            return
        if tag == "a":
            external = self.anchors.pop() if self.anchors else ""
            if external:
                self.out.append(f' <span class="gh-address">({html.escape(external)})</span></span>')
                return
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if getattr(self, "cdata_elem", None) == "style":
            self.out.append(data.replace("</", "<\\/"))  # raw text: the parser ended it at the first </style
            return
        self.out.append(html.escape(data, quote=False))

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.out.append("<!DOCTYPE html>")


def rewrite(page: str, *, bar: str, root: str, language: str = "") -> str:
    """The article `page` as served: only its own content, `bar` (trusted portal markup) after `<body>`.

    `root` is the library's URL prefix ("/library/name/"); `language` the ZIM's, for pages without a `lang`."""
    parser = _Rewriter(bar, root, html_language(language) if language else "")
    parser.feed(page)
    parser.close()
    body = "".join(parser.out)
    if not parser.barred:
        body = bar + body
    return body
