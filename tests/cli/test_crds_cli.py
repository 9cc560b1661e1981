"""``gpufair crds``: print, write, check."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from gpufair import cli
from gpufair.api import crdgen


def test_prints_every_crd_as_one_yaml_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crds"]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d is not None]
    assert printed == crdgen.definitions()
    assert {crd["spec"]["names"]["kind"] for crd in printed} == {"GPUPool", "TenantQuota"}


def test_writes_one_file_per_crd_then_check_passes(tmp_path: pathlib.Path) -> None:
    assert cli.main(["crds", "--output-dir", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["gpufair.dev_gpupools.yaml", "gpufair.dev_tenantquotas.yaml"]
    assert cli.main(["crds", "--output-dir", str(tmp_path), "--check"]) == 0


def test_check_fails_on_a_stale_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["crds", "--output-dir", str(tmp_path)])
    stale = tmp_path / "gpufair.dev_tenantquotas.yaml"
    stale.write_text(stale.read_text().replace("shortNames:\n    - tq", "shortNames:\n    - q"))
    assert cli.main(["crds", "--output-dir", str(tmp_path), "--check"]) == 1
    assert "gpufair.dev_tenantquotas.yaml is out of date" in capsys.readouterr().err


def test_docs_reference_is_spliced_between_markers(tmp_path: pathlib.Path) -> None:
    from gpufair.api import docgen

    doc = tmp_path / "api.md"
    doc.write_text(f"# API\n\nprose\n\n{docgen.BEGIN}\nold\n{docgen.END}\n\nmore prose\n")
    assert cli.main(["crds", "--docs", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# API\n\nprose\n\n")
    assert text.endswith("\n\nmore prose\n")
    assert "`spec.pools[].guaranteed`" in text
    assert "\nold\n" not in text


def test_docs_without_markers_are_an_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "api.md"
    doc.write_text("# hand-written only\n")
    assert cli.main(["crds", "--docs", str(doc)]) == 2
    assert "no" in capsys.readouterr().err
    assert doc.read_text() == "# hand-written only\n"


def test_a_model_a_real_api_server_would_refuse_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.api.test_crd_cost import _ExpensiveKind

    monkeypatch.setattr(crdgen, "KINDS", ((_ExpensiveKind, ()),))
    assert cli.main(["crds", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("gpufair crds: the models give a CRD a real API server would refuse")
    assert "expensives.gpufair.dev" in err[0]
    assert list(tmp_path.iterdir()) == []
