"""The extender's trust boundary: who can reach the verbs.

Loopback by default; elsewhere only with mutual TLS (a client certificate signed by the
configured CA) or an explicit ``--insecure``. The TLS tests run the real listener (uvicorn,
the reloading context) on 127.0.0.1 and attack it: no client certificate, a certificate from
another CA, and a certificate that was valid before the files were rotated. Each attack also
checks that nothing was bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.builders import cluster, kube, tls

from gpufair.extender import app as extender_app
from gpufair.extender import listener, settings
from gpufair.standin import processes


def config(**fields: Any) -> settings.ExtenderSettings:
    return settings.ExtenderSettings(watch=False, **fields)


TLS_FILES = {"tls_cert_file": "s.crt", "tls_key_file": "s.key", "tls_client_ca_file": "ca.crt"}


@pytest.mark.parametrize(
    ("fields", "tls", "warned"),
    [
        pytest.param({}, False, False, id="default-loopback"),
        pytest.param({"extender_host": "::1"}, False, False, id="ipv6-loopback"),
        pytest.param({"extender_host": "0.0.0.0", **TLS_FILES}, True, False, id="mutual-tls"),
        pytest.param({"extender_host": "0.0.0.0", "insecure": True}, False, True, id="insecure"),
    ],
)
def test_listeners_that_are_allowed(fields: dict[str, Any], tls: bool, warned: bool) -> None:
    decided = listener.decide(config(**fields))
    assert (decided.tls is not None) is tls
    assert (decided.warning is not None) is warned


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"extender_host": "0.0.0.0"}, "--insecure", id="plain-http-on-all"),
        pytest.param({"extender_host": "10.0.0.7"}, "not a loopback", id="plain-http-on-pod-ip"),
        pytest.param(
            {"tls_cert_file": "s.crt", "tls_key_file": "s.key"},
            "missing --tls-client-ca-file",
            id="tls-without-client-ca",
        ),
    ],
)
def test_listeners_that_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(listener.ListenerError, match=message):
        listener.decide(config(**fields))


@contextlib.contextmanager
def running(settings_: settings.ExtenderSettings, app: Any) -> Iterator[None]:
    serving = listener.Serving(settings_, app, extender_app.create_probe_app(app))
    thread = threading.Thread(target=asyncio.run, args=(serving.run(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    probe = f"http://127.0.0.1:{settings_.probe_port}/healthz"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(probe, timeout=1).status_code == 200:
                break
        time.sleep(0.05)
    try:
        yield
    finally:
        serving.stop()
        thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    cluster_ca = tls.authority(tmp_path, "cluster-ca")
    server = tls.issue(tmp_path, cluster_ca, "extender", server=True)
    files = tmp_path / "mounted"
    files.mkdir()
    for source, target in (
        (server.cert, "tls.crt"),
        (server.key, "tls.key"),
        (cluster_ca.cert, "ca.crt"),
    ):
        shutil.copy(source, files / target)
    pod = kube.pod("victim", namespace="team-a", gpus=1)
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())])
    writer = cluster.FakeWriter(state, [pod])
    app = extender_app.create_app(config(), state=state, writer=writer)
    port, probe_port = processes.free_port(), processes.free_port()
    settings_ = config(
        extender_host="127.0.0.1",
        extender_port=port,
        probe_port=probe_port,
        probe_host="127.0.0.1",
        tls_cert_file=str(files / "tls.crt"),
        tls_key_file=str(files / "tls.key"),
        tls_client_ca_file=str(files / "ca.crt"),
        tls_reload_seconds=0.1,
    )
    with running(settings_, app):
        yield {
            "url": f"https://127.0.0.1:{port}",
            "probe": f"http://127.0.0.1:{probe_port}",
            "dir": tmp_path,
            "files": files,
            "cluster_ca": cluster_ca,
            "writer": writer,
            "bind": {
                "PodName": "victim",
                "PodNamespace": "team-a",
                "PodUID": pod["metadata"]["uid"],
                "Node": "n1",
            },
        }


def post_bind(s: dict[str, Any], *, ca: tls.Pair, client: tls.Pair | None) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with httpx.Client(verify=context, timeout=5) as http:
        return http.post(f"{s['url']}/bind", json=s["bind"])


def test_kube_schedulers_client_certificate_is_answered(served: dict[str, Any]) -> None:
    scheduler = tls.issue(served["dir"], served["cluster_ca"], "kube-scheduler", server=False)
    response = post_bind(served, ca=served["cluster_ca"], client=scheduler)
    assert response.status_code == 200
    assert [b[3] for b in served["writer"].bindings] == ["n1"]


@pytest.mark.parametrize("attack", ["no-client-certificate", "certificate-from-another-ca"])
def test_an_unauthenticated_client_gets_no_answer_from_the_verbs(
    served: dict[str, Any], attack: str
) -> None:
    client = None
    if attack == "certificate-from-another-ca":
        other = tls.authority(served["dir"], "other-ca")
        client = tls.issue(served["dir"], other, "intruder", server=False)
    with pytest.raises(httpx.TransportError):
        post_bind(served, ca=served["cluster_ca"], client=client)
    assert served["writer"].bindings == []


def test_probes_have_their_own_port_without_the_verbs(served: dict[str, Any]) -> None:
    assert httpx.get(f"{served['probe']}/readyz").status_code == 200
    assert httpx.get(f"{served['probe']}/metrics").status_code == 200
    assert httpx.post(f"{served['probe']}/bind", json=served["bind"]).status_code == 404
    assert served["writer"].bindings == []


def test_rotated_certificates_are_used_without_a_restart(served: dict[str, Any]) -> None:
    old_client = tls.issue(served["dir"], served["cluster_ca"], "old-scheduler", server=False)
    rotated = tls.authority(served["dir"], "rotated-ca")
    server = tls.issue(served["dir"], rotated, "extender-2", server=True)
    new_client = tls.issue(served["dir"], rotated, "new-scheduler", server=False)
    files: pathlib.Path = served["files"]
    shutil.copy(server.key, files / "tls.key")
    shutil.copy(server.cert, files / "tls.crt")
    shutil.copy(rotated.cert, files / "ca.crt")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            response = post_bind(served, ca=rotated, client=new_client)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        pytest.fail("the rotated certificates were never used")
    assert response.status_code == 200
    with pytest.raises(httpx.TransportError):
        post_bind(served, ca=rotated, client=old_client)


def test_the_cli_refuses_plain_http_on_a_public_address_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gpufair import cli

    code = cli.main(["extender", "--host", "0.0.0.0", "--port", str(processes.free_port())])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "0.0.0.0 is not a loopback address" in err
    assert "Traceback" not in err
