"""Visit mail through a real SMTP server (aiosmtpd on loopback): the invitation, its .ics, and every refusal."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from icalendar import Calendar, Event

from gatehouse.mail import Attachment, MailError, MailSettings, build_message, send
from gatehouse.visits.invites import Method, calendar_attachment, visit_calendar, visit_uid
from tests.helpers import free_port

SENDER = "visits@gatehouse.test"
START = datetime(2030, 3, 5, 15, 0, tzinfo=timezone(timedelta(hours=1)))  # facility time, 14:00 UTC
FAMILY = [("Zoë Müller", "zoe@family.test"), ("فاطمة الزهراء", "fatima@family.test"),
          ("Dubois, Marie-Hélène", "marie@family.test")]


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it is given and refuses recipients at refused.test / later.test."""

    received: list[Envelope] = field(default_factory=list)
    secure: list[bool] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.endswith("@refused.test"):
            return "550 5.1.1 no such mailbox"
        if address.endswith("@later.test"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        self.secure.append(session.ssl is not None)
        return "250 2.0.0 accepted"

    def last(self) -> EmailMessage:
        content = self.received[-1].content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Server:
    inbox: Inbox
    settings: MailSettings


@pytest.fixture(scope="module")
def smtp() -> Iterator[Server]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Server(inbox, MailSettings(host="127.0.0.1", port=port, sender=SENDER, timeout_s=5))
    finally:
        controller.stop()


def invitation(sequence: int = 0, method: Method = "REQUEST", start: datetime = START) -> bytes:
    return visit_calendar(uid=visit_uid(42, "gatehouse.test"), sequence=sequence, method=method, start=start,
                          end=start + timedelta(minutes=30), summary="Videobezoek met Jan — زيارة",
                          description="Open the link 10 minutes before.\nStaff may watch the call.",
                          location="Online, Gatehouse", organizer_email=SENDER, organizer_name="Gatehouse",
                          attendees=FAMILY, url="https://visits.gatehouse.test/visits/42",
                          stamp=datetime(2030, 3, 1, 9, 0, tzinfo=UTC))


def calendar_of(message: EmailMessage) -> tuple[str | None, bytes]:
    """The iTIP method named by the .ics part's MIME type, and the .ics itself."""
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert part.get_filename() == "visit.ics"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    method = part.get_param("method")
    return (method if isinstance(method, str) else None), payload


def event_of(ics: bytes) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(ics)
    assert isinstance(calendar, Calendar)
    [event] = calendar.events
    return calendar, event


async def test_invitation_then_cancellation_round_trip(smtp: Server) -> None:
    changes: tuple[tuple[int, Method], ...] = ((0, "REQUEST"), (1, "CANCEL"))
    for sequence, method in changes:
        message = build_message(sender=("Gatehouse", SENDER), to=[FAMILY[0]], subject="Your video visit",
                                text="See the attached invitation.", html="<p>See the attached invitation.</p>",
                                attachments=[calendar_attachment(invitation(sequence, method), method)])
        await send(smtp.settings, message)
        got = smtp.inbox.last()
        assert smtp.inbox.received[-1].rcpt_tos == ["zoe@family.test"]
        assert smtp.inbox.received[-1].mail_from == SENDER
        assert got["To"].addresses[0].display_name == "Zoë Müller"
        assert got["Auto-Submitted"] == "auto-generated" and got["Message-ID"]
        body = got.get_body(("plain",))
        assert body is not None and body.get_content().strip() == "See the attached invitation."
        part_method, ics = calendar_of(got)
        calendar, event = event_of(ics)
        assert part_method == method == calendar.method
        assert event.uid == "visit-42@gatehouse.test"
        assert event.sequence == sequence
        assert isinstance(event.start, datetime) and event.start == START and event.start.utcoffset() == timedelta(0)
        assert b"\r\nDTSTART:20300305T140000Z\r\n" in ics and b"\r\nDTEND:20300305T143000Z\r\n" in ics
        assert event.end == START + timedelta(minutes=30)
        assert [(a.params["CN"], str(a)) for a in event.attendees] == [(n, f"mailto:{e}") for n, e in FAMILY]
        assert str(event.organizer) == f"mailto:{SENDER}"
        assert event.summary == "Videobezoek met Jan — زيارة"
        assert event.description == "Open the link 10 minutes before.\nStaff may watch the call."
        assert event.url == "https://visits.gatehouse.test/visits/42"
        alarms = [c for c in event.subcomponents if c.name == "VALARM"]
        if method == "REQUEST":
            assert event.status == "CONFIRMED"
            assert [alarm.decoded("TRIGGER") for alarm in alarms] == [timedelta(minutes=-30)]
        else:
            assert event.status == "CANCELLED" and alarms == []


async def test_non_ascii_names_and_subject_survive(smtp: Server) -> None:
    subject = "Visite vidéo confirmée — تمت الموافقة على الزيارة"
    message = build_message(sender=("Gatehouse Bezoek", SENDER), to=FAMILY, subject=subject,
                            text="Bonjour Zoë, مرحبا فاطمة, Grüße.")
    await send(smtp.settings, message)
    got = smtp.inbox.last()
    assert got["Subject"] == subject
    assert [(a.display_name, a.addr_spec) for a in got["To"].addresses] == FAMILY
    body = got.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Bonjour Zoë, مرحبا فاطمة, Grüße."
    assert sorted(smtp.inbox.received[-1].rcpt_tos) == sorted(email for _, email in FAMILY)


@pytest.mark.parametrize(("field_name", "value"), [
    ("subject", "Visit\r\nBcc: everyone@example.test"),
    ("subject", "Visit\nBcc: everyone@example.test"),
    ("to", "zoe@family.test\r\nBcc: everyone@example.test"),
    ("name", "Zoë\rBcc: everyone@example.test"),
    ("sender", "visits@gatehouse.test\nBcc: everyone@example.test"),
])
def test_line_breaks_in_headers_are_refused(field_name: str, value: str) -> None:
    args: dict[str, Any] = {"sender": SENDER, "to": "zoe@family.test", "subject": "Visit", "text": "Hello"}
    if field_name == "name":
        args["to"] = [(value, "zoe@family.test")]
    else:
        args[field_name] = value
    with pytest.raises(ValueError, match="must not contain a line break"):
        build_message(**args)


@pytest.mark.parametrize("address", ["zoe", "zoe@", "@family.test", "zoe @family.test", "Zoë <zoe@family.test>",
                                     "a@b.test, c@d.test"])
def test_what_is_not_an_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not an e-mail address"):
        build_message(sender=SENDER, to=address, subject="Visit", text="Hello")


@pytest.mark.parametrize(("recipient", "temporary", "said"), [
    ("nobody@refused.test", False, "550 5.1.1 no such mailbox"),
    ("busy@later.test", True, "450 4.2.1 mailbox busy"),
])
async def test_a_refused_recipient_is_an_error_that_says_whether_to_retry(
        smtp: Server, recipient: str, temporary: bool, said: str) -> None:
    before = len(smtp.inbox.received)
    with pytest.raises(MailError, match=f"127.0.0.1:{smtp.settings.port} refused") as caught:
        await send(smtp.settings, build_message(sender=SENDER, to=recipient, subject="Visit", text="Hello"))
    assert said in str(caught.value) and recipient in str(caught.value)
    assert caught.value.temporary is temporary
    assert len(smtp.inbox.received) == before


async def test_a_relay_that_is_down_names_itself() -> None:
    port = free_port()
    settings = MailSettings(host="127.0.0.1", port=port, sender=SENDER, timeout_s=2)
    with pytest.raises(MailError, match=f"could not connect to the mail relay 127.0.0.1:{port}") as caught:
        await send(settings, build_message(sender=SENDER, to="zoe@family.test", subject="Visit", text="Hello"))
    assert caught.value.temporary


async def test_a_relay_that_never_answers_is_given_up_after_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = MailSettings(host="127.0.0.1", port=port, sender=SENDER, timeout_s=0.5)
    began = time.monotonic()
    try:
        with pytest.raises(MailError, match=f"127.0.0.1:{port} did not answer within 0.5 s"):
            await send(settings, build_message(sender=SENDER, to="zoe@family.test", subject="Visit", text="Hi"))
    finally:
        server.close()
        await server.wait_closed()
    assert time.monotonic() - began < 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"username": "gatehouse", "password": "secret"}, "needs mail.starttls"),
    ({"username": "gatehouse", "starttls": True}, "go together"),
    ({"port": 0}, "1-65535"),
    ({"timeout_s": 0}, "positive"),
    ({"sender": "visits"}, "not an e-mail address"),
    ({"host": ""}, "no relay"),
    ({"username": "gatehouse", "password": "sécret", "starttls": True}, "ASCII"),
])
def test_settings_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(MailSettings(host="relay.test", port=25, sender=SENDER), **changes)


def test_the_password_stays_out_of_repr() -> None:
    settings = MailSettings(host="relay.test", port=587, sender=SENDER, starttls=True, username="u",
                            password="hunter2")
    assert "hunter2" not in repr(settings)


def test_attachment_mime_type_and_parameters() -> None:
    ics = invitation()
    message = build_message(sender=SENDER, to="zoe@family.test", subject="Visit", text="Hello",
                            attachments=[calendar_attachment(ics, "REQUEST"),
                                         Attachment("plan.pdf", b"%PDF-1.4", "application/pdf")])
    calendar, pdf = message.iter_attachments()
    assert calendar["Content-Type"].content_type == "text/calendar"
    assert calendar.get_param("method") == "REQUEST" and calendar.get_param("charset") == "utf-8"
    assert calendar.get_payload(decode=True) == ics
    assert pdf.get_content_type() == "application/pdf" and pdf.get_payload(decode=True) == b"%PDF-1.4"
    with pytest.raises(ValueError, match="not a MIME type"):
        build_message(sender=SENDER, to="zoe@family.test", subject="Visit", text="Hello",
                      attachments=[Attachment("x", b"", "calendar")])


@pytest.mark.parametrize(("changes", "message"), [
    ({"method": "CANCEL", "status": "CONFIRMED"}, "does not go with"),
    ({"method": "REQUEST", "status": "CANCELLED"}, "does not go with"),
    ({"method": "PUBLISH"}, "REQUEST or CANCEL"),
    ({"start": datetime(2030, 3, 5, 15, 0)}, "aware datetime"),
    ({"end": START}, "ends"),
    ({"sequence": -1}, "SEQUENCE"),
    ({"uid": "visit 42"}, "UID"),
    ({"attendees": []}, "at least one attendee"),
    ({"attendees": [("Zoë", "zoe")]}, "not an e-mail address"),
    ({"url": "javascript:alert(1)"}, "http"),
])
def test_calendar_refuses(changes: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"uid": "visit-42@gatehouse.test", "sequence": 0, "method": "REQUEST", "start": START,
                            "end": START + timedelta(minutes=30), "summary": "Visit", "description": "",
                            "location": "Online", "organizer_email": SENDER, "attendees": FAMILY[:1], **changes}
    with pytest.raises(ValueError, match=message):
        visit_calendar(**args)


def test_a_change_keeps_the_uid_and_raises_the_sequence() -> None:
    _, first = event_of(invitation(0))
    _, moved = event_of(invitation(1, start=START + timedelta(days=1)))
    assert (first.uid, first.sequence) == ("visit-42@gatehouse.test", 0)
    assert (moved.uid, moved.sequence) == ("visit-42@gatehouse.test", 1)
    assert moved.start - first.start == timedelta(days=1)
    # RFC 5545 3.1: CRLF line ends, lines folded at 75 octets.
    assert b"\r\n" in invitation() and all(len(line) <= 75 for line in invitation().split(b"\r\n"))


# -- STARTTLS and a login -------------------------------------------------------------------------------------

@dataclass
class SecureServer:
    inbox: Inbox
    settings: MailSettings
    logins: list[bytes]


@pytest.fixture(scope="module")
def tls_smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    cafile = Path(tmp_path_factory.mktemp("mail-ca")) / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    logins: list[bytes] = []

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append(auth_data.login)
        granted = (auth_data.login, auth_data.password) == (b"gatehouse", b"s3cret")
        return AuthResult(success=granted, handled=False)  # handled=False: aiosmtpd answers 535 itself

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True, authenticator=authenticator, auth_required=True)
    controller.start()
    try:
        yield SecureServer(inbox, MailSettings(host="127.0.0.1", port=port, sender=SENDER, starttls=True,
                                               username="gatehouse", password="s3cret", timeout_s=5,
                                               cafile=str(cafile)), logins)
    finally:
        controller.stop()


def hello() -> EmailMessage:
    return build_message(sender=SENDER, to="zoe@family.test", subject="Visit", text="Hello")


async def test_starttls_and_login(tls_smtp: SecureServer) -> None:
    await send(tls_smtp.settings, hello())
    assert tls_smtp.inbox.secure[-1] is True
    assert tls_smtp.inbox.last()["Subject"] == "Visit"
    assert tls_smtp.logins[-1] == b"gatehouse"


async def test_a_wrong_password_is_a_lasting_error(tls_smtp: SecureServer) -> None:
    attempts = len(tls_smtp.logins)
    with pytest.raises(MailError, match="refused the login") as caught:
        await send(replace(tls_smtp.settings, password="guessed"), hello())
    assert not caught.value.temporary
    assert len(tls_smtp.logins) == attempts + 1  # one wrong password is one failed login, not one per mechanism


async def test_a_relay_certificate_we_do_not_trust_is_refused(tls_smtp: SecureServer) -> None:
    before = len(tls_smtp.inbox.received)
    with pytest.raises(MailError, match="no secure connection .* certificate"):
        await send(replace(tls_smtp.settings, cafile=None), hello())  # the system's CAs do not know the test CA
    assert len(tls_smtp.inbox.received) == before


async def test_starttls_wanted_but_not_offered(smtp: Server) -> None:
    with pytest.raises(MailError, match="does not offer STARTTLS"):
        await send(replace(smtp.settings, starttls=True), hello())


async def test_without_starttls_the_secure_relay_refuses(tls_smtp: SecureServer) -> None:
    with pytest.raises(MailError, match="refused") as caught:
        await send(replace(tls_smtp.settings, starttls=False, username=None, password=None), hello())
    assert "STARTTLS" in str(caught.value) and not caught.value.temporary
