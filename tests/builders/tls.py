"""Certificates for mutual-TLS tests, made with the ``openssl`` command (skipped without it).

:func:`authority` makes a CA; :func:`issue` a leaf signed by it (a server certificate for
127.0.0.1, or a client certificate as kube-scheduler would present).
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess

import pytest


@dataclasses.dataclass(frozen=True)
class Pair:
    cert: pathlib.Path
    key: pathlib.Path


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def authority(directory: pathlib.Path, name: str) -> Pair:
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    )  # fmt: skip
    return pair


def issue(directory: pathlib.Path, ca: Pair, name: str, *, server: bool) -> Pair:
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pair.key), "-out", str(request), "-subj", f"/CN={name}",
    )  # fmt: skip
    extensions = directory / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    lines = [f"extendedKeyUsage={usage}", "basicConstraints=CA:FALSE"]
    if server:
        lines.append("subjectAltName=IP:127.0.0.1,DNS:localhost")
    extensions.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.cert), "-days", "2", "-extfile", str(extensions),
    )  # fmt: skip
    return pair
