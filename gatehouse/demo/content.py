"""A small built-in content site, so the allowlist can be tried without the internet.

It answers every demo host name on one port (HTTP) and one port (HTTPS, certificate issued by a demo origin
CA that the gateway is told to trust), with a page that says which host it is.
"""

from __future__ import annotations

import datetime
import html
import ssl
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SITES = {
    "learn.demo.test": ("Learning", "Courses in Dutch, French, German and English. Lesson 1: reading a payslip."),
    "jobs.demo.test": ("Jobs", "Vacancies for people leaving prison: kitchen help, warehouse, bicycle repair."),
    "housing.demo.test": ("Housing", "How to apply for social housing, and who to call before release."),
    "mail.demo.test": ("Mail", "A webmail service. The facility policy denies it."),
    "games.demo.test": ("Games", "No rule allows this site, so the gateway blocks it."),
    "library.demo.test": ("Public library", "Opening hours, e-books and audio books. Open at the library terminal "
                                            "only, unless education staff ask for more."),
}


async def page(request: web.Request) -> web.Response:
    host = request.host.split(":")[0].lower()
    title, text = SITES.get(host, ("Unknown site", "This host is not part of the demo."))
    body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p><p>Host: {html.escape(host)}; "
            f"path: {html.escape(request.path)}</p>")
    return web.Response(text=body, content_type="text/html")


def content_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


def issue_origin_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throw-away origin CA and a certificate for every demo host; returns the CA file and server context."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gatehouse demo origin CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo content")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in SITES]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = folder / "demo-origin-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = folder / "demo-origin.pem"
    chain.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()) + leaf.public_bytes(serialization.Encoding.PEM))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return ca_file, context
