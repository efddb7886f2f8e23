"""The Dockerfile's invariants (it cannot be built here: there is no Docker engine)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "src" / "finmlops" / "deploy" / "docker"
FINAL = ("serving", "training", "mlflow")
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|cmake|clang|apt-get install)\b")


def _stages() -> dict[str, list[str]]:
    """Instructions of each stage (continuation lines joined), by stage name."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current = "_preamble"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = m.group(2)
        stages.setdefault(current, []).append(line)
    return stages


def test_base_image_is_pinned() -> None:
    (arg,) = [line for line in _stages()["_preamble"] if line.startswith("ARG PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_build_tools_only_in_the_build_stage() -> None:
    stages = _stages()
    assert BUILD_TOOLS.search(" ".join(stages["build"]))
    for name in ("runtime", *FINAL):
        assert not BUILD_TOOLS.search(" ".join(stages[name])), name
        assert stages[name][0].split()[1] in ("${PYTHON_IMAGE}", "runtime"), name


@pytest.mark.parametrize("stage", FINAL)
def test_final_stages_run_as_a_numeric_non_root_user(stage: str) -> None:
    users = [line.split()[1] for line in _stages()[stage] if line.startswith("USER ")]
    assert users, stage
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, stage


def test_serving_image_has_probes_port_and_no_torch() -> None:
    serving = " ".join(_stages()["serving"])
    assert "EXPOSE 8080" in serving
    assert re.search(r"HEALTHCHECK .*CMD .*/v2/health/live", serving)
    assert "--no-deps" in serving and "requirements-serving" not in serving.replace(
        "/wheels/serving", "")
    assert "find_spec('torch') is None" in serving
    runtime = " ".join(_stages()["runtime"])
    assert "FINMLOPS_HOME=/data" in runtime


def test_serving_requirements_fit_the_package() -> None:
    """No torch; every pin satisfies pyproject.toml (mlflow-skinny stands in for mlflow)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}
    lines = [line for line in (DOCKER / "requirements-serving.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    reqs = [Requirement(line) for line in lines]
    names = {r.name.lower() for r in reqs}
    assert not names & {"torch", "onnxscript", "plotly", "hera"}
    assert {"onnxruntime", "starlette", "uvicorn", "prometheus-client"} <= names
    for r in reqs:
        name = "mlflow" if r.name.lower() == "mlflow-skinny" else r.name.lower()
        assert name in declared, r.name
        (pin,) = [s.version for s in r.specifier if s.operator == "=="]
        assert declared[name].specifier.contains(pin), f"{r.name}=={pin} vs {declared[name]}"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[next(i for i, line in enumerate(lines) if not line.startswith("#"))] == "**"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)
