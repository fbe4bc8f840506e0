"""A self-signed certificate for ``localhost`` / ``127.0.0.1``: the Google Ads client only
speaks TLS, and trusts this one through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SelfSignedCertificate:
    key_pem: bytes
    cert_pem: bytes

    @classmethod
    def for_localhost(cls) -> SelfSignedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        )

    def write_roots(self, path: Path) -> Path:
        """The certificate as a roots file for ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``."""
        path.write_bytes(self.cert_pem)
        return path


@functools.cache
def process_certificate() -> SelfSignedCertificate:
    """One certificate for every fake of this process, trusted through
    ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``: gRPC reads that file once, when the process makes
    its first TLS channel, so a second certificate would never be trusted."""
    cert = SelfSignedCertificate.for_localhost()
    folder = Path(tempfile.mkdtemp(prefix="fake-google-ads-tls-"))
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(cert.write_roots(folder / "roots.pem"))
    return cert
