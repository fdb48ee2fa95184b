"""A private CA and the certificates signed by it, for the secured local stack and its tests.

Made with the ``openssl`` command line (no extra Python package): EC P-256 keys, PEM files for
Python clients and Elasticsearch, a PKCS12 keystore for Kafka. Key files are 0600.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cpwatch.exceptions import StackError
from deploy.install import require_tool

DAYS = 825  # the longest validity TLS clients still accept for a server certificate


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _openssl(*args: str, env: dict[str, str] | None = None) -> None:
    openssl = require_tool("openssl", "install openssl to generate the stack's certificates")
    proc = subprocess.run(  # noqa: S603
        [openssl, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def _new_key(path: Path) -> None:
    curve = "ec_paramgen_curve:P-256"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", curve, "-out", str(path))
    path.chmod(0o600)


def make_ca(directory: Path, name: str = "cpwatch local CA") -> CertPair:
    """A self-signed CA in ``directory`` (ca.pem, ca.key); reused when both files exist."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertPair(directory / "ca.pem", directory / "ca.key")
    if ca.cert.exists() and ca.key.exists():
        return ca
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert), "-days", str(DAYS),
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return ca


def issue(ca: CertPair, directory: Path, name: str, hosts: tuple[str, ...]) -> CertPair:
    """A certificate for ``hosts`` (DNS names or IPs) signed by ``ca``, usable by servers and
    clients (mTLS); reused when it exists."""
    pair = CertPair(directory / f"{name}.pem", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    _new_key(pair.key)
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    sans = ",".join(
        f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts
    )
    ext.write_text(
        f"subjectAltName={sans}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("req", "-new", "-key", str(pair.key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.cert), "-days", str(DAYS), "-extfile", str(ext),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return pair


def pkcs12(pair: CertPair, ca: CertPair, out: Path, password: str) -> Path:
    """``pair`` and its CA chain as a PKCS12 keystore (Kafka's ssl.keystore)."""
    # The password travels in the environment, not on a command line others can read in ps.
    _openssl(
        "pkcs12", "-export", "-in", str(pair.cert), "-inkey", str(pair.key),
        "-certfile", str(ca.cert), "-name", "cpwatch", "-out", str(out),
        "-passout", "env:CPWATCH_P12_PASSWORD",
        env={"CPWATCH_P12_PASSWORD": password},
    )  # fmt: skip
    out.chmod(0o600)
    return out


def sha256_fingerprint(cert: Path) -> str:
    """The certificate's SHA-256 fingerprint as hex (what ``es_ssl_fingerprint`` pins)."""
    import hashlib
    import ssl

    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()
