"""The operator's real admission webhook on a laptop: HTTPS on ``127.0.0.1`` with a certificate
made by ``openssl``, registered with the API server by kopf (``--webhook-managed``).

``gpufair demo`` and the e2e scenarios (``e2e/harness/scenario.py``) both run the operator this
way: :func:`self_signed_certificate` makes the certificate and key, :func:`operator_arguments`
are the operator's flags, :func:`wait_registered` waits until kopf has written the
``MutatingWebhookConfiguration`` with the certificate as ``caBundle`` (from then on the stand-in
calls the webhook, verifying it as a real API server would, for every pod created).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from gpufair.api import names

CONFIGURATION = names.GROUP
"""The MutatingWebhookConfiguration kopf manages for the operator (``--webhook-managed``)."""

CONFIGURATION_PATH = (
    f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION}"
)
HOST = "127.0.0.1"


class CertificateError(RuntimeError):
    """No certificate for the webhook's HTTPS; the message says why."""


class MissingOpenSSLError(CertificateError):
    """``openssl`` is not installed."""


class NotRegisteredError(RuntimeError):
    """kopf did not register the webhook in time."""


def openssl() -> str | None:
    """The ``openssl`` executable, ``None`` when it is not installed."""
    return shutil.which("openssl")


def self_signed_certificate(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A certificate and key for ``127.0.0.1`` (the webhook's HTTPS), made with ``openssl``."""
    executable = openssl()
    if executable is None:
        raise MissingOpenSSLError(
            "openssl is not installed (no certificate for the operator's webhook);"
            " scripts/ensure-tools.sh installs it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "webhook.crt", directory / "webhook.key"
    command = [
        executable,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={HOST}",
        "-addext",
        f"subjectAltName=IP:{HOST},DNS:localhost",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    made = subprocess.run(command, check=False, capture_output=True, text=True)
    if made.returncode != 0:
        raise CertificateError(
            f"openssl could not make the webhook's certificate (exit {made.returncode}):"
            f" {made.stderr.strip()[-300:]}"
        )
    return cert, key


def operator_arguments(
    *, cert: pathlib.Path, key: pathlib.Path, port: int, managed: bool = True
) -> list[str]:
    """``gpufair operator`` flags serving the webhook on ``127.0.0.1:port`` with this
    certificate (instead of ``--dev``); with ``managed`` kopf writes the configuration, without
    it someone else registers it, as the Helm chart does (the e2e scenarios, see
    ``e2e/harness/scenario.py``)."""
    arguments = [
        "--standalone",
        "--webhook-host",
        HOST,
        "--webhook-port",
        str(port),
        "--webhook-cert",
        str(cert),
        "--webhook-key",
        str(key),
    ]
    return [*arguments, "--webhook-managed"] if managed else arguments


def registered(configuration: Mapping[str, Any] | None) -> bool:
    """The configuration names a webhook with a ``caBundle``: the API server calls it."""
    hooks = (configuration or {}).get("webhooks") or []
    return any((hook.get("clientConfig") or {}).get("caBundle") for hook in hooks)


def wait_registered(
    fetch: Callable[[], Mapping[str, Any] | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    check: Callable[[], None] | None = None,
) -> None:
    """Until ``fetch()`` (the configuration, ``None`` while there is none) says
    :func:`registered`; ``check`` runs before every probe (e.g. raise if the operator died)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if registered(fetch()):
            return
        if time.monotonic() > deadline:
            raise NotRegisteredError(
                f"the operator's webhook was not registered within {timeout:.0f} s"
                f" (no MutatingWebhookConfiguration {CONFIGURATION} with a caBundle)"
            )
        time.sleep(interval)
