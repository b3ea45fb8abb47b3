"""A preview of a requested page for the staff who review it, fetched by the server with the gateway's checks.

The server fetches the page, never the inmate's browser: no cookies, no credentials, no script run. Every hop
(redirects too) is checked as the gateway checks an upstream and the connection is pinned to the checked address,
so a name resolving to an internal address, or to a public one when checked and 127.0.0.1 when connecting (DNS
rebinding), is refused. The same fetch repeated later (the second look) is compared with `drift()`, which names
what the page can newly do: a form posting elsewhere, a login, an upload, a way to send messages.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from email.message import Message
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import h11

from gatehouse.errors import GatehouseError
from gatehouse.settings import ResolveTable, Settings
from gatehouse.upstream import UpstreamRefused, upstream_address, upstream_context
from policies.hosts import HostError, canonical_host
from policies.snapshot import Snapshot

USER_AGENT = "Gatehouse-preview/1 (a staff review of a requested page; no scripts, no cookies)"
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024
EXCERPT_CHARS = 600
MAX_LINKS = 50
MAX_FORMS = 50
MAX_FIELDS = 100
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
SAFE_PATH = "/%:@!$&'()*+,;=-._~"
"""RFC 3986 pchar and "/": characters a request target keeps; anything else (spaces, CR, LF) is escaped."""

FORM_ELSEWHERE, LOGIN, UPLOAD, MAIL, POST = "form-elsewhere", "login", "upload", "mail", "post"
FLAGS = (FORM_ELSEWHERE, LOGIN, UPLOAD, MAIL, POST)
CONCERNS = {
    FORM_ELSEWHERE: "a form that sends what is typed to another site",
    LOGIN: "a password field (a login)",
    UPLOAD: "a way to upload files",
    MAIL: "a way to send mail or messages",
    POST: "a form that sends data to the site (more than a search)",
}
"""What each flag means, in the words staff read in `drift()`."""

RECIPIENT_WORDS = frozenset({"to", "recipient", "recipients", "rcpt", "cc", "bcc", "subject"})
BODY_WORDS = frozenset({"message", "msg", "body"})
MAIL_WORDS = re.compile(r"\b(?:webmail|compose|new message|"
                        r"(?:send|write) (?:us )?(?:a |an |the )?(?:message|e-?mail|mail))\b", re.IGNORECASE)
"""Looked for in the title, link texts and button labels only: in running text "compose" is mostly about essays."""
SKIPPED_TEXT = frozenset({"script", "style", "template", "noscript"})
BLOCKS = frozenset({"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
                    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
                    "ol", "option", "p", "pre", "section", "table", "td", "th", "tr", "ul"})


class PreviewError(GatehouseError):
    """The page cannot be previewed; the message says why, for the staff member who asked."""


class Refused(PreviewError):
    """The page's address is one the gateway would not connect to either."""


# ---------------------------------------------------------------------------------------------- the address check
async def checked_address(host: str, port: int, table: ResolveTable, policy: Snapshot) -> tuple[str, int]:
    """The gateway's own check (`gatehouse.upstream`), its refusal as this module's."""
    try:
        return await upstream_address(host, port, table, policy)
    except UpstreamRefused as exc:
        raise Refused(str(exc)) from None


def default_trust(extra_ca_file: str = "") -> ssl.SSLContext:
    """The roots the gateway trusts upstream: certifi's, and an extra bundle."""
    try:
        return upstream_context(extra_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PreviewError(f"setting proxy.upstream_ca_file: cannot read {extra_ca_file}: {exc}") from None


def trust_for(settings: Settings) -> ssl.SSLContext:
    """What the gateway of these settings trusts, so a page that opens through the gateway also previews."""
    return default_trust(settings["proxy.upstream_ca_file"])


# ---------------------------------------------------------------------------------------------- what a page holds
@dataclass(frozen=True, slots=True)
class Link:
    text: str
    href: str


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Form:
    """What a form can do with any of its submit buttons (a button's formaction or formmethod counts)."""

    method: str
    action: str
    elsewhere: bool
    """The action (or a button's formaction) is on another host than the page."""
    fields: tuple[Field, ...] = ()
    has_password: bool = False
    has_file: bool = False


@dataclass(frozen=True, slots=True)
class Preview:
    """A page as the server saw it; `error` is "" when it was fetched, and then the rest describes it."""

    url: str
    final_url: str = ""
    status: int = 0
    content_type: str = ""
    title: str = ""
    excerpt: str = ""
    links: tuple[Link, ...] = ()
    forms: tuple[Form, ...] = ()
    flags: frozenset[str] = frozenset()
    truncated: bool = False
    """The page was longer than the bytes read; what came after is not in the preview."""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain dicts, lists and scalars (links and forms as dicts, flags sorted), for a JSON column."""
        plain = asdict(self)
        plain.update(links=[asdict(link) for link in self.links], flags=sorted(self.flags),
                     forms=[{**asdict(form), "fields": [asdict(f) for f in form.fields]} for form in self.forms])
        return plain

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preview:
        """Missing keys take their defaults, so a preview stored before a field was added still loads."""
        return cls(str(data["url"]), str(data.get("final_url", "")), int(data.get("status", 0)),
                   str(data.get("content_type", "")), str(data.get("title", "")), str(data.get("excerpt", "")),
                   tuple(Link(str(x["text"]), str(x["href"])) for x in data.get("links", ())),
                   tuple(_form_from_json(x) for x in data.get("forms", ())),
                   frozenset(str(x) for x in data.get("flags", ())), bool(data.get("truncated", False)),
                   str(data.get("error", "")))


def _form_from_json(data: Mapping[str, Any]) -> Form:
    return Form(str(data["method"]), str(data["action"]), bool(data["elsewhere"]),
                tuple(Field(str(f["name"]), str(f["type"])) for f in data.get("fields", ())),
                bool(data.get("has_password")), bool(data.get("has_file")))


@dataclass
class _Draft:
    method: str
    action: str
    elsewhere: bool
    multipart: bool
    fields: list[Field] = field(default_factory=list)


def _host_of(url: str) -> str | None:
    """The canonical host of an http(s) URL; None for other schemes and hosts that cannot be canonical."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        return canonical_host(parts.hostname)
    except HostError:
        return None


def _method(raw: str) -> str:
    """HTML's form method: post and dialog as named, anything else (typos included) is GET."""
    method = raw.strip().upper()
    return method if method in ("POST", "DIALOG") else "GET"


def _squeeze(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


class _Reader(HTMLParser):
    """Collects text, links and forms; the markup is only read, nothing in it (scripts, handlers) is run.

    Script, style, template and noscript give no text, but forms and links inside them still count: a form kept
    in a template is one a script may show."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = self.base = page_url
        self.page_host = _host_of(page_url)
        self.title: list[str] = []
        self.text: list[str] = []
        self.links: list[Link] = []
        self.labels: list[str] = []
        self.mailto = False
        self.forms: list[_Draft] = []
        self.loose = _Draft("GET", page_url, False, False)
        """Fields outside any form (or tied to one with form="..."): they count for the flags."""
        self._skip = 0
        self._titled = self._in_title = self._based = False
        self._form: _Draft | None = None
        self._link: tuple[str, list[str]] | None = None
        self._button: list[str] | None = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # HTML ignores the "/" of <a/>: the element stays open, as in browsers

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given: dict[str, str] = {}
        for name, value in attrs:
            given.setdefault(name, value or "")  # a repeated attribute: browsers keep the first
        if tag in SKIPPED_TEXT:
            self._skip += 1
        elif tag == "title" and not self._titled:
            self._titled = self._in_title = True
        elif tag == "base" and given.get("href") and not self._based:
            self._based, self.base = True, urljoin(self.page_url, given["href"])
        elif tag in ("a", "area") and "href" in given:
            self._end_link()
            self._link = (urljoin(self.base, given["href"].strip()), [given.get("aria-label", "")])
        elif tag == "img" and self._link is not None:
            self._link[1].append(given.get("alt", ""))
        elif tag == "form":
            self._start_form(given)
        elif tag in ("input", "button", "select", "textarea"):
            self._control(tag, given)
        if tag in BLOCKS:
            self.text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TEXT:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in ("a", "area"):
            self._end_link()
        elif tag == "form":
            self._form = None
        elif tag == "button":
            self._end_button()
        if tag in BLOCKS:
            self.text.append(" ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
            return
        if self._skip:
            return
        self.text.append(data)
        if self._link is not None:
            self._link[1].append(data)
        if self._button is not None:
            self._button.append(data)

    def finish(self) -> None:
        """A link or button still open at the end of the page (or of the bytes read) counts as closed there."""
        self._end_link()
        self._end_button()

    def _end_button(self) -> None:
        if self._button is not None:
            self.labels.append(" ".join(self._button))
            self._button = None

    def _end_link(self) -> None:
        if self._link is None:
            return
        href, words = self._link
        self._link = None
        text = _squeeze(" ".join(words), 200)
        self.labels.append(text)
        scheme = urlsplit(href).scheme.lower()
        self.mailto = self.mailto or scheme == "mailto"
        if scheme in ("http", "https", "mailto") and len(self.links) < MAX_LINKS:
            self.links.append(Link(text, href))

    def _start_form(self, given: Mapping[str, str]) -> None:
        if self._form is not None:  # a form inside a form is ignored by HTML parsers; its fields join the outer
            return
        action = urljoin(self.base, given["action"].strip()) if given.get("action", "").strip() else self.page_url
        self._form = _Draft(_method(given.get("method", "")), action, self._elsewhere(action),
                            given.get("enctype", "").strip().lower() == "multipart/form-data")
        self.forms.append(self._form)

    def _elsewhere(self, action: str) -> bool:
        host = _host_of(action)
        return host is not None and host != self.page_host

    def _control(self, tag: str, given: Mapping[str, str]) -> None:
        form = self._form if self._form is not None and "form" not in given else self.loose
        kind = given.get("type", "").strip().lower() if tag in ("input", "button") else tag
        kind = kind or ("submit" if tag == "button" else "text")
        if tag == "button":
            self._button = []
        if kind in ("submit", "image"):
            self.labels.append(given.get("value", ""))
            if given.get("formaction", "").strip():
                form.elsewhere = form.elsewhere or self._elsewhere(urljoin(self.base, given["formaction"].strip()))
            if "formmethod" in given and _method(given["formmethod"]) == "POST":
                form.method = "POST"
            if given.get("formenctype", "").strip().lower() == "multipart/form-data":
                form.multipart = True
        if (name := given.get("name", "")) or kind in ("password", "file", "textarea"):
            form.fields.append(Field(name, kind))


def _words(name: str) -> set[str]:
    """`mailTo`, `mail_to`, `msg[body]` -> their words, lower case."""
    return set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()))


def _mail_form(fields: Sequence[Field]) -> bool:
    """A multi-line field with a recipient or subject field beside it, or itself named message/body."""
    areas = [f for f in fields if f.type == "textarea"]
    return bool(areas) and (any(_words(f.name) & RECIPIENT_WORDS for f in fields)
                            or any(_words(f.name) & BODY_WORDS for f in areas))


def _flags(reader: _Reader, title: str) -> frozenset[str]:
    drafts = [*reader.forms, reader.loose]
    fields = [f for d in drafts for f in d.fields]
    flags = set()
    if any(d.elsewhere for d in drafts):
        flags.add(FORM_ELSEWHERE)
    if any(f.type == "password" for f in fields):
        flags.add(LOGIN)
    if any(f.type == "file" for f in fields) or any(d.multipart for d in reader.forms):
        flags.add(UPLOAD)
    if (reader.mailto or any(urlsplit(d.action).scheme.lower() == "mailto" for d in reader.forms)
            or any(_mail_form(d.fields) for d in drafts) or any(MAIL_WORDS.search(t) for t in [title, *reader.labels])):
        flags.add(MAIL)
    if any(d.method == "POST" for d in drafts):
        flags.add(POST)
    return frozenset(flags)


def read_html(html: str, page_url: str) -> Preview:
    """What the page at `page_url` holds and can do; the fetch details (status, type) are the caller's to add.

    Flags, a heuristic for a person to look at, not a verdict:
    form-elsewhere: a form (or one of its buttons) sends to another host than the page's, compared exactly;
    login: a password field anywhere; upload: a file field or a multipart form; post: a form that can POST;
    mail: a mailto: link or form, a form with a multi-line field and a field named like to/recipient/cc/bcc/
    subject (or the multi-line field named message/msg/body, as contact forms are), or the title, a link or a
    button saying webmail, compose, new message, or send/write a message/mail/e-mail."""
    reader = _Reader(page_url)
    reader.feed(html)
    reader.close()
    reader.finish()
    title = _squeeze("".join(reader.title), 300)
    forms = tuple(Form(d.method, d.action, d.elsewhere, tuple(d.fields[:MAX_FIELDS]),
                       any(f.type == "password" for f in d.fields), any(f.type == "file" for f in d.fields))
                  for d in reader.forms[:MAX_FORMS])
    return Preview(url=page_url, final_url=page_url, title=title,
                   excerpt=_squeeze("".join(reader.text), EXCERPT_CHARS), links=tuple(reader.links), forms=forms,
                   flags=_flags(reader, title))


# ---------------------------------------------------------------------------------------------- the fetch
@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    authority: str
    path: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool


def _target(url: str) -> _Target:
    """The one request for `url`: canonical host, the default port filled in, no user name, no fragment."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise PreviewError(f"not a web address: {url} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise PreviewError(f"only http and https pages are previewed, not {scheme or 'an address without'}: {url}")
    try:
        host = canonical_host(parts.hostname or "")
    except HostError as exc:
        raise PreviewError(f"not a web address: {url} ({exc})") from None
    port = port or DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=SAFE_PATH)
    if parts.query:
        path += "?" + quote(parts.query, safe=SAFE_PATH + "?")
    return _Target(f"{scheme}://{authority}{path}", scheme, host, port, authority, path)


async def fetch_preview(url: str, *, table: ResolveTable, policy: Snapshot, trust: ssl.SSLContext | None = None,
                        timeout: float = 10.0, max_bytes: int = 2_000_000, max_redirects: int = 5) -> Preview:
    """Fetch `url` as the gateway would connect to it and describe it; expected failures (refused address,
    unreachable, bad certificate, broken answer, too slow) come back as `error`, not as exceptions.

    `trust` defaults to the public roots only: pass `trust_for(settings)` to trust what the gateway trusts."""
    try:
        async with asyncio.timeout(timeout):
            return await _follow(url, table, policy, trust or default_trust(), max_bytes, max_redirects)
    except PreviewError as exc:
        return Preview(url=url, error=str(exc))
    except TimeoutError:
        return Preview(url=url, error=f"no complete answer within {timeout:g} s")


async def _follow(url: str, table: ResolveTable, policy: Snapshot, trust: ssl.SSLContext, max_bytes: int,
                  max_redirects: int) -> Preview:
    current = url
    for _ in range(max_redirects + 1):
        target = _target(current)
        answer = await _get(target, table, policy, trust, max_bytes)
        if answer.status in REDIRECTS and answer.headers.get("location"):
            current = urljoin(target.url, answer.headers["location"])
            continue
        return _described(url, target.url, answer, max_bytes)
    raise PreviewError(f"more than {max_redirects} redirects; the last led to {current}")


async def _get(target: _Target, table: ResolveTable, policy: Snapshot, trust: ssl.SSLContext,
               max_bytes: int) -> _Answer:
    """One GET, on a connection to the checked address; TLS checks the certificate against the host's name."""
    address = await checked_address(target.host, target.port, table, policy)
    tls = trust if target.scheme == "https" else None
    try:
        reader, writer = await asyncio.open_connection(*address, ssl=tls, limit=CHUNK,
                                                       server_hostname=target.host if tls else None)
    except ssl.SSLCertVerificationError as exc:
        raise PreviewError(f"the certificate of {target.host} does not verify: {exc.verify_message}") from None
    except OSError as exc:
        raise PreviewError(f"cannot reach {target.host} ({address[0]}): {exc.strerror or exc}") from None
    try:
        return await _exchange(target, reader, writer, max_bytes)
    except (OSError, h11.ProtocolError) as exc:
        raise PreviewError(f"{target.host} gave a broken answer: {exc}") from None
    finally:
        writer.transport.abort()


async def _exchange(target: _Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    max_bytes: int) -> _Answer:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    headers = [("Host", target.authority), ("User-Agent", USER_AGENT),
               ("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"), ("Accept-Encoding", "identity"),
               ("Connection", "close")]
    writer.write((conn.send(h11.Request(method="GET", target=target.path, headers=headers)) or b"")
                 + (conn.send(h11.EndOfMessage()) or b""))
    await writer.drain()
    response: h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(CHUNK))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                break
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    if response is None:
        raise PreviewError(f"{target.host} closed the connection without answering")
    fields = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers}
    return _Answer(response.status_code, fields, bytes(body[:max_bytes]), len(body) > max_bytes)


def _inflated(answer: _Answer, max_bytes: int) -> tuple[bytes, bool]:
    """The body without its Content-Encoding (asked for none, but some servers send gzip anyway), bounded."""
    encoding = answer.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return answer.body, answer.truncated
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise PreviewError(f"the page is compressed as {encoding}, which the preview cannot read")
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header, whichever is there
    try:
        body = inflater.decompress(answer.body, max_bytes)
    except zlib.error as exc:
        raise PreviewError(f"the page's {encoding} compression is broken: {exc}") from None
    return body, answer.truncated or bool(inflater.unconsumed_tail)


def _decoded(body: bytes, charset: str | None) -> str:
    """Text in the charset the header names, else the one a <meta> near the start names, else UTF-8."""
    if not charset and (meta := re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", body[:4096], re.I)):
        charset = meta.group(1).decode("ascii")
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    return body.decode(codec, "replace")


def _described(url: str, final_url: str, answer: _Answer, max_bytes: int) -> Preview:
    header = Message()
    header["content-type"] = answer.headers.get("content-type", "")
    content_type = header.get_content_type() if answer.headers.get("content-type") else ""
    body, truncated = _inflated(answer, max_bytes)
    if content_type in HTML_TYPES or (not content_type and body.lstrip()[:1] == b"<"):
        preview = read_html(_decoded(body, header.get_content_charset()), final_url)
    elif content_type == "text/plain":
        preview = Preview(url, excerpt=_squeeze(_decoded(body, header.get_content_charset()), EXCERPT_CHARS))
    else:
        preview = Preview(url)
    return replace(preview, url=url, final_url=final_url, status=answer.status, content_type=content_type,
                   truncated=truncated)


# ---------------------------------------------------------------------------------------------- the second look
def _form_key(form: Form) -> tuple[str, str]:
    """Method and action without its query: a token in the query changes on every load and is no change."""
    parts = urlsplit(form.action)
    return form.method, f"{parts.scheme}://{parts.netloc}{parts.path}"


def _fields_of(form: Form) -> str:
    names = [f.name or f.type for f in form.fields]
    return f" (fields: {', '.join(names)})" if names else ""


def drift(before: Preview, after: Preview) -> list[str]:
    """What the second look found that the approved page did not have, in lines for staff; [] when nothing.

    Removed things are no concern. A second look that could not fetch the page is one: nothing was checked."""
    if after.error:
        return [f"The page could not be looked at again: {after.error}"]
    lines = []
    before_host, after_host = _host_of(before.final_url), _host_of(after.final_url)
    if not before.error and before_host and after_host and before_host != after_host:
        lines.append(f"The address now leads to {after_host} instead of {before_host}.")
    lines += [f"New on the page: {CONCERNS[flag]}." for flag in FLAGS if flag in after.flags - before.flags]
    known = {_form_key(form) for form in before.forms}
    for form in after.forms:
        if _form_key(form) in known:
            continue
        names = [f.name for f in form.fields]
        twin = next((old for old in before.forms if [f.name for f in old.fields] == names), None)
        if twin is not None and _host_of(twin.action) != _host_of(form.action):
            lines.append(f"A form{_fields_of(form)} now sends to {_host_of(form.action) or form.action} instead "
                         f"of {_host_of(twin.action) or twin.action}.")
        elif twin is not None and twin.method != form.method:
            lines.append(f"A form{_fields_of(form)} now sends with {form.method} instead of {twin.method}.")
        elif twin is None:
            lines.append(f"A new form: {form.method} {form.action}{_fields_of(form)}.")
    return lines
