"""Test certificates, made when the tests run (none are committed).

trustme makes the certificate authorities and the RSA and ECDSA certificates;
trustme has no Ed25519 keys, so :func:`issue_ed25519` signs one with the
``cryptography`` package, using the trustme CA's key. Keys are written in the
formats a user may hand to ``--keyfile``: PKCS#8 (trustme's), PKCS#1 (``RSA
PRIVATE KEY``), SEC1 (``EC PRIVATE KEY``), encrypted PKCS#8 (``ENCRYPTED PRIVATE
KEY``) and the legacy OpenSSL encryption (``Proc-Type: 4,ENCRYPTED``) that
Propylon refuses.

:class:`ServerFiles` is one certificate and key on disk with the CA that
signed them, ready for ``--certfile``/``--keyfile``/``--ca-certs`` and for an
``ssl.SSLContext`` that trusts them.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

#: The names every server certificate is valid for.
SERVER_NAMES = ("127.0.0.1", "localhost")
#: The password of the encrypted test keys.
KEY_PASSWORD = "correct horse"


@dataclass(frozen=True)
class ServerFiles:
    """A server certificate chain, its key and its CA, as PEM files."""

    certfile: Path
    keyfile: Path
    ca_certs: Path
    #: The serial number of the server (leaf) certificate.
    serial: int

    def args(self, *extra: str) -> list[str]:
        """``--certfile``/``--keyfile`` options for this certificate."""
        return ["--certfile", str(self.certfile), "--keyfile", str(self.keyfile), *extra]

    def client_context(self, alpn: tuple[str, ...] | None = None) -> ssl.SSLContext:
        """A client context that trusts this CA (and checks the host name)."""
        context = ssl.create_default_context(cafile=str(self.ca_certs))
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


def write_ca(ca: trustme.CA, path: Path) -> Path:
    ca.cert_pem.write_to_path(str(path))
    return path


def write_leaf(leaf: trustme.LeafCert, ca_path: Path, directory: Path, name: str) -> ServerFiles:
    """Write ``leaf``'s chain and PKCS#8 key as ``name.crt``/``name.key``."""
    certfile = directory / f"{name}.crt"
    keyfile = directory / f"{name}.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(keyfile))
    return ServerFiles(certfile, keyfile, ca_path, serial_of(certfile))


def serial_of(certfile: Path) -> int:
    """The serial number of the first certificate in a PEM file."""
    return x509.load_pem_x509_certificate(certfile.read_bytes()).serial_number


def serial_of_der(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


def rewrite_key(files: ServerFiles, name: str, fmt: str, password: str | None = None) -> ServerFiles:
    """The same certificate with its key rewritten in another format.

    ``fmt``: ``"pkcs8"``, ``"traditional"`` (PKCS#1 for RSA, SEC1 for EC) or
    ``"legacy-encrypted"`` (traditional with ``Proc-Type: 4,ENCRYPTED``);
    ``password`` encrypts (PKCS#8 ``ENCRYPTED PRIVATE KEY`` unless legacy).
    """
    key = serialization.load_pem_private_key(files.keyfile.read_bytes(), None)
    private_format = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        "legacy-encrypted": serialization.PrivateFormat.TraditionalOpenSSL,
    }[fmt]
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password is not None
        else serialization.NoEncryption()
    )
    keyfile = files.keyfile.with_name(f"{name}.key")
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, private_format, encryption))
    return ServerFiles(files.certfile, keyfile, files.ca_certs, files.serial)


def issue_ed25519(ca: trustme.CA, ca_path: Path, directory: Path, name: str) -> ServerFiles:
    """A server certificate with an Ed25519 key, signed by ``ca`` (trustme cannot make these)."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ed25519.Ed25519PrivateKey.generate()
    now = datetime.datetime.now(datetime.timezone.utc)
    sign_with = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "propylon ed25519 test")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
            ]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, sign_with)
    )
    certfile = directory / f"{name}.crt"
    keyfile = directory / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return ServerFiles(certfile, keyfile, ca_path, cert.serial_number)


class TestPKI:
    """Everything the TLS tests need, written under one directory.

    - ``ecdsa``, ``rsa``, ``ed25519``: server certificates for 127.0.0.1 and
      localhost, all signed by ``ca``;
    - ``other``: a server certificate from a second CA (``other_ca_path``),
      for the SIGHUP reload test;
    - ``client_pem``: a client certificate and key (one PEM) signed by ``ca``;
      ``stranger_pem``: one signed by the other CA, which the server must not
      accept.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA(organization_name="Propylon test CA")
        self.ca_path = write_ca(self.ca, directory / "ca.pem")
        self.ecdsa = write_leaf(
            self.ca.issue_cert(*SERVER_NAMES, key_type=trustme.KeyType.ECDSA), self.ca_path, directory, "ecdsa"
        )
        self.rsa = write_leaf(
            self.ca.issue_cert(*SERVER_NAMES, key_type=trustme.KeyType.RSA), self.ca_path, directory, "rsa"
        )
        self.ed25519 = issue_ed25519(self.ca, self.ca_path, directory, "ed25519")
        self.other_ca = trustme.CA(organization_name="Propylon other test CA")
        self.other_ca_path = write_ca(self.other_ca, directory / "other-ca.pem")
        self.other = write_leaf(self.other_ca.issue_cert(*SERVER_NAMES), self.other_ca_path, directory, "other")
        self.client_pem = directory / "client.pem"
        self.ca.issue_cert("client@example.com", common_name="propylon test client") \
            .private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        self.stranger_pem = directory / "stranger.pem"
        self.other_ca.issue_cert("stranger@example.com", common_name="stranger") \
            .private_key_and_cert_chain_pem.write_to_path(str(self.stranger_pem))
        #: Trusts both CAs (for a client that must accept the server before and after a reload).
        self.both_cas_path = directory / "both-cas.pem"
        self.both_cas_path.write_bytes(self.ca_path.read_bytes() + self.other_ca_path.read_bytes())
