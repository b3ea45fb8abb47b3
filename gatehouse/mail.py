"""Mail through the facility's SMTP relay: build a message, send it, and say clearly why it could not go.

Callers keep what they send (the visits outbox) and try again later, so `send` never swallows a failure: it
raises `MailError`, whose `temporary` tells a retry that may work (relay down, 4xx) from one that will not (5xx).
Send one message per recipient: a relay may take some recipients and refuse others, and a retry of a message
with several would deliver twice to those it took.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from gatehouse.errors import GatehouseError

#: A recipient or sender: a bare address, or (display name, address). Names may be in any script.
Mailbox = str | tuple[str, str]


class MailError(GatehouseError):
    """The relay did not take the message. `temporary`: trying again later may work."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How to reach the relay. `timeout_s` bounds each network step (connect, greeting, each command)."""

    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    #: CA certificates to verify the relay's STARTTLS certificate with; None means the system's.
    cafile: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("mail.host is empty: there is no relay to send through")
        if not 0 < self.port < 65536:
            raise ValueError(f"mail.port must be 1-65535, not {self.port}")
        if not self.timeout_s > 0:
            raise ValueError(f"the mail timeout must be positive, not {self.timeout_s}")
        check_address(self.sender, "mail.sender")
        if (self.username is None) != (self.password is None):
            raise ValueError("mail.username and mail.password go together: set both or neither")
        if not (self.username or "").isascii() or not (self.password or "").isascii():
            raise ValueError("mail.username and mail.password must be ASCII (SMTP AUTH as smtplib speaks it)")
        if self.username is not None and not self.starttls:
            raise ValueError("a login at the mail relay needs mail.starttls, or the password crosses the network "
                             "in clear")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach; `mime_type` may carry parameters, e.g. "text/calendar; method=REQUEST"."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


def _no_newline(value: str, what: str) -> str:
    # A CR or LF in a header value would start a new header (Bcc: anyone): header injection.
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} must not contain a line break (CR or LF): {value!r}")
    return value


def check_address(addr_spec: str, what: str) -> str:
    """`addr_spec` if it looks like one e-mail address (local@domain, no spaces or line breaks), else ValueError."""
    _no_newline(addr_spec, what)
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>,;\"" for c in addr_spec):
        raise ValueError(f"{what} is not an e-mail address: {addr_spec!r}")
    return addr_spec


def _address(mailbox: Mailbox, what: str) -> Address:
    name, addr_spec = ("", mailbox) if isinstance(mailbox, str) else mailbox
    return Address(display_name=_no_newline(name, what), addr_spec=check_address(addr_spec, what))


def _mime_type(value: str) -> tuple[str, str, dict[str, str]]:
    kind, *rest = (part.strip() for part in _no_newline(value, "a MIME type").split(";"))
    maintype, slash, subtype = kind.partition("/")
    if not slash or not maintype or not subtype:
        raise ValueError(f"not a MIME type: {value!r}")
    params = {}
    for item in rest:
        key, equals, param = item.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"not a MIME parameter in {value!r}: {item!r}")
        params[key.strip().lower()] = param.strip().strip('"')
    return maintype.lower(), subtype.lower(), params


def build_message(*, sender: Mailbox, to: str | Sequence[Mailbox], subject: str, text: str,
                  html: str | None = None, attachments: Sequence[Attachment] = (),
                  now: datetime | None = None) -> EmailMessage:
    """A MIME message: the text (and an HTML alternative), then the attachments.

    `to` is one address, or a sequence of mailboxes (`[("Marie Dubois", "marie@example.org")]`). Raises
    ValueError on a line break in the subject, a name or an address, or on an address that is not one.
    """
    recipients: list[Mailbox] = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    from_address = _address(sender, "the sender")
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = [_address(mailbox, "a recipient") for mailbox in recipients]
    message["Subject"] = _no_newline(subject, "the subject")
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=from_address.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the facility
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, subtype, params = _mime_type(attachment.mime_type)
        if maintype == "text":
            params.setdefault("charset", "utf-8")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                               filename=_no_newline(attachment.filename, "an attachment's name"), params=params)
    return message


async def send(settings: MailSettings, message: EmailMessage) -> None:
    """Hand `message` to the relay (smtplib in a thread, so the event loop never waits on the network)."""
    await asyncio.to_thread(_send, settings, message)


def _send(settings: MailSettings, message: EmailMessage) -> None:
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.cafile))
            if settings.username is not None and settings.password is not None:
                _login(smtp, settings.username, settings.password, where)
            refused = smtp.send_message(message, from_addr=settings.sender)
    except smtplib.SMTPRecipientsRefused as exc:
        raise _refused(where, "the recipients", exc.recipients) from exc
    except smtplib.SMTPSenderRefused as exc:
        raise _reply(where, f"refused the sender {exc.sender}", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise _reply(where, "refused the login (check mail.username and mail.password)", exc.smtp_code,
                     exc.smtp_error) from exc
    except smtplib.SMTPNotSupportedError as exc:
        what = "STARTTLS" if settings.starttls and "STARTTLS" in str(exc) else "what this message needs"
        raise MailError(f"the mail relay {where} does not offer {what}: {exc}", temporary=False) from exc
    except smtplib.SMTPResponseException as exc:  # SMTPDataError, SMTPHeloError, a refused STARTTLS, ...
        raise _reply(where, "refused the message", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib turns a read that timed out into this
            raise _silent(settings) from exc
        raise MailError(f"the mail relay {where} closed the connection: {exc}", temporary=True) from exc
    except smtplib.SMTPException as exc:
        raise MailError(f"the mail relay {where} failed: {exc}", temporary=True) from exc
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        raise MailError(f"no secure connection to the mail relay {where}: {exc} (check its certificate and "
                        "mail.starttls)", temporary=False) from exc
    except TimeoutError as exc:
        raise _silent(settings) from exc
    except OSError as exc:
        raise MailError(f"could not connect to the mail relay {where}: {exc.strerror or exc}",
                        temporary=True) from exc
    if refused:
        raise _refused(where, "some recipients", refused)


def _login(smtp: smtplib.SMTP, username: str, password: str, where: str) -> None:
    """One AUTH exchange, PLAIN (RFC 4616) or else LOGIN, always inside STARTTLS. Not `smtp.login`: after a
    refusal it tries each other mechanism, so one wrong password counts as two or three failures at a relay
    that locks accounts."""
    smtp.ehlo_or_helo_if_needed()
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    smtp.user, smtp.password = username, password
    if "PLAIN" in offered:
        smtp.auth("PLAIN", smtp.auth_plain)
    elif "LOGIN" in offered:
        smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
    else:
        raise MailError(f"the mail relay {where} offers no login by password (AUTH PLAIN or LOGIN); offered: "
                        f"{' '.join(offered) or 'none'}", temporary=False)


def _silent(settings: MailSettings) -> MailError:
    return MailError(f"the mail relay {settings.host}:{settings.port} did not answer within {settings.timeout_s:g} s",
                     temporary=True)


def _reply(where: str, what: str, code: int, text: bytes | str) -> MailError:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return MailError(f"the mail relay {where} {what}: {code} {said}", temporary=400 <= code < 500)


def _refused(where: str, what: str, refused: Mapping[str, tuple[int, bytes]]) -> MailError:
    said = "; ".join(f"{rcpt}: {code} {text.decode('utf-8', 'replace')}" for rcpt, (code, text) in refused.items())
    temporary = all(400 <= code < 500 for code, _ in refused.values())
    return MailError(f"the mail relay {where} refused {what}: {said}", temporary=temporary)
