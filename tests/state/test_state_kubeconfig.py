"""One precedence for Kubernetes credentials: flag, $KUBECONFIG, in-cluster, ~/.kube/config."""

from __future__ import annotations

import pathlib

import pytest

from gpufair.state import kubeconfig

IN_POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
Source = kubeconfig.Source


@pytest.mark.parametrize(
    ("flag", "environ", "token", "home", "expected"),
    [
        pytest.param(
            "f.yaml",
            {**IN_POD, "KUBECONFIG": "e"},
            True,
            "/h",
            (Source.FLAG, "f.yaml"),
            id="flag-first",
        ),
        pytest.param(
            None,
            {**IN_POD, "KUBECONFIG": "a:b"},
            True,
            "/h",
            (Source.ENVIRONMENT, "a:b"),
            id="env-before-in-cluster",
        ),
        pytest.param(
            None, IN_POD, True, "/h", (Source.IN_CLUSTER, None), id="in-cluster-before-home"
        ),
        pytest.param(
            None,
            IN_POD,
            False,
            "/h",
            (Source.HOME, "/h"),
            id="service-host-without-token-is-not-in-cluster",
        ),
        pytest.param(
            None, {"KUBECONFIG": ""}, False, "/h", (Source.HOME, "/h"), id="empty-env-is-unset"
        ),
    ],
)
def test_precedence(
    flag: str | None,
    environ: dict[str, str],
    token: bool,
    home: str | None,
    expected: tuple[kubeconfig.Source, str | None],
) -> None:
    choice = kubeconfig.choose(flag, environ=environ, token_exists=token, home_config=home)
    assert (choice.source, choice.path) == expected


def test_no_source_at_all_says_every_place_it_looked() -> None:
    with pytest.raises(kubeconfig.KubeconfigError, match=r"--kubeconfig.*\$KUBECONFIG.*pod"):
        kubeconfig.choose(None, environ={}, token_exists=False, home_config=None)


def test_a_kubeconfig_naming_no_file_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(kubeconfig.KubeconfigError, match=f"KUBECONFIG={missing}: no such file"):
        kubeconfig.client_configuration()


def test_the_flag_beats_a_broken_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://flag.example:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert kubeconfig.client_configuration(str(config)).host == "https://flag.example:6443"


def test_credentials_are_loaded_in_one_place_only() -> None:
    """No component loads a kubeconfig or the service account by itself (one precedence)."""
    src = pathlib.Path(kubeconfig.__file__).parents[1]
    loaders = [
        f"{path.relative_to(src)}:{number}"
        for path in sorted(src.rglob("*.py"))
        if path != pathlib.Path(kubeconfig.__file__)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "load_kube_config(" in line or "load_incluster_config(" in line
    ]
    assert loaders == []
