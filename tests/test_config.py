"""The config file: validation with YAML paths, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pesabridge.cli import app
from pesabridge.config import load_config
from pesabridge.errors import ConfigError

GOOD = """
database: sqlite:///ledger.db
sources:
  - name: statements
    type: folder
    path: inbox
  - name: daraja
    type: daraja-c2b
sinks:
  - name: erp
    type: http
    url: https://erp.example.test/api/payments
    headers:
      Authorization: Bearer ${ERP_TOKEN}
routes:
  - from: [statements, daraja]
    to: [erp]
    entries: [payment]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pesabridge.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_secret_from_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={"ERP_TOKEN": "s3cret"})
    sink = config.sinks[0]
    header = sink.headers["Authorization"]  # type: ignore[attr-defined]
    assert header.get_secret_value() == "Bearer s3cret"
    # the secret never shows in a repr (and so never in a log line)
    assert "s3cret" not in repr(config)
    assert config.sources[0].path == Path("inbox")  # type: ignore[attr-defined]
    assert config.base_dir == tmp_path.resolve()
    assert config.routes[0].statuses == ["completed"]


def test_every_problem_is_reported_with_its_yaml_path(tmp_path: Path) -> None:
    text = """
database: sqlite:///ledger.db
sources:
  - name: statements
    type: folder
  - name: statements
    type: ftp-of-dreams
sinks:
  - name: erp
    type: http
    url: not a url
    timeout: {connect: -1}
routes:
  - from: [nowhere]
    to: [erp, also-nowhere]
"""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    problems = caught.value.problems
    joined = "\n".join(problems)
    assert "sources[0].path: Field required" in joined
    assert "sources[1].type: unknown source type 'ftp-of-dreams'" in joined
    assert any(p.startswith("sinks[0].url:") for p in problems)
    assert any(p.startswith("sinks[0].timeout.connect:") for p in problems)
    assert "routes[0].from[0]: no source named 'nowhere'" in joined
    assert "routes[0].to[1]: no sink named 'also-nowhere'" in joined


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD), environ={})
    assert caught.value.problems == [
        "sinks[0].headers.Authorization: environment variable ERP_TOKEN is not set"
    ]


def test_unknown_keys_are_errors_not_ignored(tmp_path: Path) -> None:
    text = GOOD.replace("    entries: [payment]", "    entries: [payment]\n    sink: erp")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={"ERP_TOKEN": "x"})
    assert any(p.startswith("routes[0].sink:") for p in caught.value.problems)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "sources:\n  - name: [unclosed\n"), environ={})
    assert caught.value.problems[0].startswith(f"{tmp_path / 'pesabridge.yaml'}:")


def test_check_config_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("ERP_TOKEN", "x")
    good = runner.invoke(app, ["check-config", str(write(tmp_path, GOOD))])
    assert good.exit_code == 0, good.output
    assert "2 sources, 1 sinks, 1 routes" in good.output
    bad_path = tmp_path / "bad.yaml"
    bad_path.write_text("sinks:\n  - name: erp\n    type: http\n")
    bad = runner.invoke(app, ["check-config", str(bad_path)])
    assert bad.exit_code == 2
    assert "sinks[0].url: Field required" in bad.output
