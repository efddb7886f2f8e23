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
    assert "environments/dev/kustomization.yaml" in report["files"]
    assert "environments/prod/kustomization.yaml" in report["files"]
    assert {"argocd/dev.yaml", "argocd/prod.yaml"} <= set(report["files"])
    assert report["objects"] > 60
    for env in ("dev", "prod"):
        folder = out / "environments" / env
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert sorted(kustomization["resources"]) == sorted(
            p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")


def test_render_one_environment_leaves_the_other(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(app, ["deploy", "render", "--out", str(out),
                                      "--environment", "dev"])
    assert result.exit_code == 0, result.output
    assert (out / "environments" / "dev").is_dir()
    assert not (out / "environments" / "prod").exists()
    prod = CliRunner().invoke(app, ["deploy", "render", "--out", str(out), "-e", "prod"])
    assert prod.exit_code == 0, prod.output
    assert (out / "environments" / "dev" / "serving.yaml").is_file()  # not pruned
    bad = CliRunner().invoke(app, ["deploy", "render", "--out", str(out), "-e", "staging"])
    assert isinstance(bad.exception, ConfigError)
    assert "deploy.environments has: dev, prod" in bad.exception.message


def test_a_committed_promotion_survives_a_re_render(app: typer.Typer, tmp_path: Path) -> None:
    """promotion.yaml is the one file `abtest decide --apply` writes: a seed the render
    writes when absent and never overwrites."""
    out = tmp_path / "k8s"
    assert CliRunner().invoke(app, ["deploy", "render", "--out", str(out)]).exit_code == 0
    path = out / "environments" / "prod" / "promotion.yaml"
    seeded = path.read_text()
    assert '"state": null' in seeded
    path.write_text(seeded.replace('"state": null', '"state": null, "x": 1'))
    assert CliRunner().invoke(app, ["deploy", "render", "--out", str(out)]).exit_code == 0
    assert '"x": 1' in path.read_text()
    path.unlink()
    assert CliRunner().invoke(app, ["deploy", "render", "--out", str(out)]).exit_code == 0
    assert path.read_text() == seeded


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
    sizes = {}
    for env in ("dev", "prod"):
        hpa = next(d for d in yaml.safe_load_all(
            (tmp_path / "o" / "environments" / env / "serving.yaml").read_text())
            if d["kind"] == "HorizontalPodAutoscaler")
        sizes[env] = (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    # prod follows the deploy section; dev keeps its own sizes (deploy.environments.dev).
    assert sizes == {"prod": (3, 9), "dev": (1, 2)}


def test_out_must_be_a_directory(app: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["deploy", "render", "--out", str(target)])
    assert isinstance(result.exception, ConfigError)
