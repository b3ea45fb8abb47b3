"""The facility CA: the authority inspected TLS is re-signed with, installed on every terminal.

Files are written in the layout mitmproxy's certificate store reads (`<basename>-ca.pem` holds key and
certificate), so the inspector loads it as it is and never makes a CA of its own.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

BASENAME = "mitmproxy"  # the name mitmproxy's certificate store looks for
VALID_DAYS = 3650


def ca_key_file(ca_dir: Path) -> Path:
    return ca_dir / f"{BASENAME}-ca.pem"


def ca_cert_file(ca_dir: Path) -> Path:
    """The certificate alone, to install on terminals (the portal serves it at /ca.pem)."""
    return ca_dir / "gatehouse-ca-cert.pem"


def create_ca(ca_dir: Path, facility: str) -> bool:
    """Create the CA unless one exists; True when it was created. The key file is readable by owner only."""
    if ca_key_file(ca_dir).exists():
        return False
    ca_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"Gatehouse CA {facility}"[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gatehouse"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    fd = os.open(ca_key_file(ca_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem + cert_pem)
    ca_cert_file(ca_dir).write_bytes(cert_pem)
    return True
