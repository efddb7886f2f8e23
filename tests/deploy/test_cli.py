"""``finmlops deploy render`` end to end through Typer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from finmlops.cli import deploy
from finmlops.errors import ConfigError, ModelNotFoundError


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.chdir(tmp_path)  # no ./finmlops.yaml
    for key in [k for k in __import__("os").environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context, config: Path | None = None) -> None:
        ctx.obj = {"config": config}

    deploy.register(root)
    return root


def test_render_kubernetes(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(app, ["deploy", "render", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert "overlays/dev/kustomization.yaml" in report["files"]
    assert "overlays/prod/kustomization.yaml" in report["files"]
    assert report["objects"] > 30
    base = yaml.safe_load((out / "base" / "kustomization.yaml").read_text())
    assert sorted(base["resources"]) == sorted(p.name for p in (out / "base").glob("*.yaml")
                                               if p.name != "kustomization.yaml")


def test_render_one_overlay(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(app, ["deploy", "render", "--out", str(out), "--overlay", "dev"])
    assert result.exit_code == 0, result.output
    assert (out / "overlays" / "dev").is_dir() and not (out / "overlays" / "prod").exists()


@pytest.mark.parametrize("target", ["seldon", "kserve"])
def test_seldon_and_kserve_need_registered_versions(app: typer.Typer, tmp_path: Path,
                                                   target: str) -> None:
    # An empty home: no version to pin, so nothing is written and the error says what to run.
    result = CliRunner().invoke(app, ["deploy", "render", "--target", target,
                                      "--out", str(tmp_path / target)])
    assert isinstance(result.exception, ModelNotFoundError)
    assert "finmlops register" in result.exception.message
    assert "--model-version baseline=N" in result.exception.message
    assert not (tmp_path / target).exists()
    result = CliRunner().invoke(app, ["deploy", "render", "--target", target, "--out",
                                      str(tmp_path / target), "--model-version", "nope=1"])
    assert isinstance(result.exception, ConfigError)
    assert "not an experiment arm" in result.exception.message


def test_config_from_file_and_bad_values(app: typer.Typer, tmp_path: Path) -> None:
    cfg = tmp_path / "finmlops.yaml"
    cfg.write_text("deploy:\n  replicas: 4\n  max_replicas: 3\n")
    result = CliRunner().invoke(app, ["--config", str(cfg), "deploy", "render",
                                      "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, ConfigError)
    assert "max_replicas" in str(result.exception)
    cfg.write_text("deploy:\n  replicas: 3\n  max_replicas: 9\n")
    result = CliRunner().invoke(app, ["--config", str(cfg), "deploy", "render",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    hpa = next(d for d in yaml.safe_load_all((tmp_path / "o" / "base" / "serving.yaml")
                                             .read_text())
               if d["kind"] == "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)


def test_out_must_be_a_directory(app: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["deploy", "render", "--out", str(target)])
    assert isinstance(result.exception, ConfigError)
