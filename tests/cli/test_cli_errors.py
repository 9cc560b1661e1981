"""Every ``gpufair`` failure is one line on stderr that says what to do, never a traceback.

Each case runs ``python -m gpufair ...`` as a real process (argparse's exit, the settings read
from ``GPUFAIR_*``, kubeconfig lookup and port binding all happen as for a user) and checks the
exit code (2: bad flag, file, setting or input; 1: valid input, but no cluster or a taken
port), that stderr is exactly one line, and that the line names what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from gpufair.standin import webhook

USAGE, FAILURE = 2, 1

TWO_BAD_QUOTAS = """\
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata: {name: team-a}
spec: {namespaces: [team-a], pools: [{name: h100, guaranteed: 9, limit: 4}]}
---
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata: {name: team-b}
spec: {namespaces: [team-b], weight: -1, pools: [{name: h100}]}
"""

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: not-checked}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""


@dataclasses.dataclass(frozen=True)
class Case:
    """``gpufair ARGV`` in ``ENV`` exits ``exit_code`` with one line naming each of ``names``.

    ``{name}`` in an argument, variable or name is one of the :func:`files` placeholders.
    """

    argv: tuple[str, ...]
    exit_code: int
    names: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    logged: bool = False
    """A running component's failure: its one line is a log record (time, level, logger)."""


def case(
    argv: str,
    exit_code: int,
    *names: str,
    env: Mapping[str, str] | None = None,
    logged: bool = False,
    id: str,
) -> object:
    return pytest.param(Case(tuple(argv.split()), exit_code, names, env or {}, logged), id=id)


CASES = [
    # -- gpufair operator ---------------------------------------------------------------------
    case(
        "operator",
        USAGE,
        "--webhook-cert",
        "--webhook-key",
        "--dev",
        id="operator-without-certificate",
    ),
    case("operator --webhook-cert {cert}", USAGE, "--webhook-key", id="operator-cert-without-key"),
    case(
        "operator --webhook-cert {missing} --webhook-key {key}",
        USAGE,
        "--webhook-cert {missing}",
        id="operator-certificate-file-missing",
    ),
    case(
        "operator --webhook-cert {cert} --webhook-key {other_key}",
        USAGE,
        "--webhook-cert {cert}",
        "--webhook-key {other_key}",
        id="operator-key-of-another-certificate",
    ),
    case(
        "operator --webhook-cert {garbage} --webhook-key {garbage}",
        USAGE,
        "--webhook-cert {garbage}",
        id="operator-certificate-not-pem",
    ),
    case(
        "operator --webhook-cert {cert} --webhook-key {key} --webhook-port {busy_port}",
        FAILURE,
        "--webhook-port {busy_port}",
        id="operator-webhook-port-in-use",
    ),
    case("operator --dev --metrics-port eighty", USAGE, "--metrics-port", id="operator-bad-flag"),
    case(
        "operator --dev --tick -1", USAGE, "--tick", "GPUFAIR_TICK_SECONDS", id="operator-bad-tick"
    ),
    case(
        "operator --dev",
        USAGE,
        "GPUFAIR_TICK_SECONDS",
        "--tick",
        "'soon'",
        env={"GPUFAIR_TICK_SECONDS": "soon"},
        id="operator-bad-setting-from-environment",
    ),
    case(
        "operator --dev",
        USAGE,
        "KUBECONFIG={missing}",
        env={"KUBECONFIG": "{missing}"},
        id="operator-kubeconfig-variable-names-no-file",
    ),
    case("operator --dev", FAILURE, "cannot start", "KUBECONFIG", id="operator-no-cluster"),
    case(
        "operator --dev",
        FAILURE,
        "cannot reach the API server at https://127.0.0.1:{closed_port}",
        env={"KUBECONFIG": "{unreachable_kubeconfig}"},
        id="operator-api-server-unreachable",
    ),
    # -- gpufair extender ---------------------------------------------------------------------
    case("extender --kubeconfig {missing}", USAGE, "--kubeconfig {missing}", id="extender-no-file"),
    case(
        "extender --kubeconfig {garbage}",
        USAGE,
        "--kubeconfig {garbage}",
        "not a usable kubeconfig",
        id="extender-kubeconfig-not-a-kubeconfig",
    ),
    case(
        "extender --host 127.0.0.1 --port {busy_port}",
        FAILURE,
        "--port {busy_port}",
        id="extender-port-in-use",
    ),
    case("extender --log-level loud", USAGE, "--log-level", id="extender-bad-log-level-flag"),
    case(
        "extender",
        USAGE,
        "GPUFAIR_LOG_LEVEL",
        "--log-level",
        env={"GPUFAIR_LOG_LEVEL": "loud"},
        id="extender-bad-log-level-from-environment",
    ),
    case(
        "extender",
        USAGE,
        "GPUFAIR_EXTENDER_PORT",
        "--port",
        env={"GPUFAIR_EXTENDER_PORT": "99999"},
        id="extender-port-out-of-range-from-environment",
    ),
    case("extender --port 0", FAILURE, "cannot start", "KUBECONFIG", id="extender-no-cluster"),
    # -- gpufair agent ------------------------------------------------------------------------
    case("agent --dry-run --from-file {missing}", USAGE, "{missing}", id="agent-capture-missing"),
    case("agent --dry-run --from-file {garbage}", USAGE, "{garbage}:1", id="agent-capture-garbage"),
    case("agent --interval 0", USAGE, "--interval", id="agent-interval-zero"),
    case(
        "agent --once --node-name gpu-node-7 --from-file {capture}",
        FAILURE,
        "ERROR",
        "gpu-node-7",
        "127.0.0.1",
        env={"KUBECONFIG": "{unreachable_kubeconfig}"},
        logged=True,
        id="agent-once-api-server-unreachable",
    ),
    case("agent --once", USAGE, "--node-name", "NODE_NAME", id="agent-no-node-name"),
    case(
        "agent --dry-run --from-file {garbage} --source nvml",
        USAGE,
        "--from-file",
        "--source",
        id="agent-two-sources",
    ),
    # -- gpufair crds, topology, whatif -------------------------------------------------------
    case("crds --check", USAGE, "--output-dir", "--docs", id="crds-check-without-target"),
    case("crds --output-dir {garbage}/crds", USAGE, "{garbage}", id="crds-output-under-a-file"),
    case("topology parse {missing}", USAGE, "{missing}", id="topology-capture-missing"),
    case("topology parse {garbage}", USAGE, "{garbage}:1", id="topology-capture-garbage"),
    case("topology parse", USAGE, "FILE", id="topology-no-file"),
    case("whatif --capacity h100=8", USAGE, "-f", id="whatif-no-file"),
    case("whatif -f {missing}", USAGE, "{missing}", id="whatif-file-missing"),
    case("whatif -f {bad_yaml}", USAGE, "{bad_yaml}: line ", "invalid YAML", id="whatif-bad-yaml"),
    case(
        "whatif -f {two_bad_quotas} --capacity h100=8",
        USAGE,
        "team-a",
        "guaranteed",
        "team-b",
        "weight",
        id="whatif-every-problem-on-one-line",
    ),
    case("whatif -f {bad_yaml} --capacity h100", USAGE, "--capacity", id="whatif-bad-capacity"),
    # -- gpufair simulate, bench, demo --------------------------------------------------------
    case("simulate --trace {missing}", USAGE, "--trace", "{missing}", id="simulate-no-trace"),
    case(
        "simulate --trace {garbage} --start yesterday",
        USAGE,
        "--start",
        id="simulate-bad-start",
    ),
    case(
        "simulate --trace {garbage} --policy gpufair",
        USAGE,
        "--topology-dir",
        id="simulate-trace-outside-the-shared-data",
    ),
    case("bench extender --pods 0", USAGE, "--pods", id="bench-extender-no-pods"),
    case("bench extender --runs 0", USAGE, "--runs", id="bench-extender-no-runs"),
    case("bench extender --memory 100", USAGE, "--memory", id="bench-extender-memory-one-count"),
    case("bench operator --nodes 0", USAGE, "--nodes", id="bench-operator-no-nodes"),
    case(
        "bench operator --nodes 8 --topology-dir {tmp}",
        USAGE,
        "{tmp}",
        id="bench-operator-no-captures",
    ),
    case("demo --duration 0", USAGE, "--duration", id="demo-zero-duration"),
    case(
        "demo --topology-dir {tmp}",
        USAGE,
        "{tmp}",
        "dgx-a100-8gpu-nv12-12nic-4numa.txt",
        "--topology-dir",
        id="demo-capture-missing",
    ),
    # -- gpufair itself -----------------------------------------------------------------------
    case("", USAGE, "COMMAND", id="no-command"),
    case("schedule", USAGE, "schedule", id="unknown-command"),
]


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, shared_data: pathlib.Path
) -> Iterator[dict[str, str]]:
    """The placeholders of :data:`CASES`: files good and bad, and a port something listens on."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    if webhook.openssl() is None:
        pytest.skip("openssl is not installed (scripts/ensure-tools.sh installs it)")
    cert, key = webhook.self_signed_certificate(tmp / "one")
    _, other_key = webhook.self_signed_certificate(tmp / "other")
    garbage = tmp / "garbage.txt"
    garbage.write_text("garbage\n")
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("kind: GPUPool\nspec: [unclosed\n")
    two_bad_quotas = tmp / "quotas.yaml"
    two_bad_quotas.write_text(TWO_BAD_QUOTAS)
    (tmp / "home").mkdir()
    with socket.socket() as closed:  # a port nothing listens on once this is closed
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    unreachable_kubeconfig = tmp / "unreachable.kubeconfig"
    unreachable_kubeconfig.write_text(UNREACHABLE_KUBECONFIG.format(port=closed_port))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield {
            "tmp": str(tmp),
            "home": str(tmp / "home"),
            "missing": str(tmp / "missing.file"),
            "cert": str(cert),
            "key": str(key),
            "other_key": str(other_key),
            "garbage": str(garbage),
            "bad_yaml": str(bad_yaml),
            "two_bad_quotas": str(two_bad_quotas),
            "busy_port": str(listener.getsockname()[1]),
            "closed_port": str(closed_port),
            "capture": str(shared_data / "topology" / "dgx-a100-8gpu-nv12-12nic-4numa.txt"),
            "unreachable_kubeconfig": str(unreachable_kubeconfig),
        }


def environment(files: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without cluster credentials or gpufair settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KUBERNETES_SERVICE", "GPUFAIR_", "KUBECONFIG", "NODE_NAME"))
    }
    env["HOME"] = files["home"]  # no ~/.kube/config
    env.update({key: value.format(**files) for key, value in extra.items()})
    return env


@pytest.mark.parametrize("given", CASES)
def test_a_failure_is_one_line_naming_what_to_fix(given: Case, files: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpufair", *(arg.format(**files) for arg in given.argv)],
        env=environment(files, given.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert given.logged or lines[0].startswith("gpufair")
    for name in given.names:
        assert name.format(**files) in lines[0]
    assert done.returncode == given.exit_code, lines[0]


def test_the_placeholders_are_what_the_cases_say(files: dict[str, str]) -> None:
    """The certificate cases mean something only if the good pair is good and the other is not."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files["cert"], files["key"])
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(files["cert"], files["other_key"])
    assert not pathlib.Path(files["missing"]).exists()
