"""A self-signed certificate for 127.0.0.1 / localhost, made by the openssl command for a test."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool


def make_cert(tmp: Path, name: str = "server") -> tuple[Path, Path]:
    """(certificate, key) PEM files in ``tmp``: EC P-256, valid two days, SAN IP:127.0.0.1 and
    DNS:localhost (what the client's name check needs)."""
    openssl = require_tool("openssl")
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
