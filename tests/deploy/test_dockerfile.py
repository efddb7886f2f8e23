"""The Dockerfile's invariants (it cannot be built here: there is no Docker engine)."""

from __future__ import annotations

import ast
import re
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from model_support import mean_weights, write_linear_model

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "src" / "finmlops" / "deploy" / "docker"
FINAL = ("serving", "training", "mlflow")
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|cmake|clang)\b")
RUNTIME_PACKAGES = {"training": {"git"}}
"""What a final stage may install from Debian (the training image pushes promotions)."""


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
        installed = {w for line in stages[name] for m in re.finditer(
            r"apt-get install ((?:-\S+ )*)([^&]+)", line) for w in m.group(2).split()}
        assert installed <= RUNTIME_PACKAGES.get(name, set()), (name, installed)


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
    assert 'pip install --no-index --find-links /wheels/serving "finmlops[serve]"' in serving
    assert "find_spec('torch') is None" in serving
    runtime = " ".join(_stages()["runtime"])
    assert "FINMLOPS_HOME=/data" in runtime


def test_every_image_installs_from_the_one_lock() -> None:
    """pyproject.toml is the one dependency list; requirements.lock pins it for every image."""
    build = " ".join(_stages()["build"])
    assert re.search(r"COPY pyproject.toml README.md requirements.lock ", build)
    wheels = re.findall(r"pip wheel [^&]*", build)
    assert len(wheels) == 3 and all("-c requirements.lock" in w for w in wheels), wheels
    assert '".[serve]"' in wheels[0] and '".[train]"' in wheels[1]
    assert not (DOCKER / "requirements-serving.txt").exists()
    mlflow_image = [Requirement(line) for line in
                    (DOCKER / "requirements-mlflow.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    locked = _lock()
    for r in mlflow_image:  # the server image takes the lock's versions where it has them
        assert not r.specifier or canonicalize_name(r.name) not in locked, r


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out = {"core": [Requirement(d) for d in project["dependencies"]]}
    for name, reqs in project["optional-dependencies"].items():
        out[name] = [Requirement(d) for d in reqs]
    return out


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _closure(roots: list[Requirement]) -> set[str]:
    """Distributions that installing ``roots`` pulls in, from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in roots]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name == "finmlops":
            for extra in extras:
                todo.extend((r, frozenset(r.extras)) for r in _extras()[extra])
            continue
        if name in seen and not extras:
            continue
        seen.add(name)
        try:
            deps = requires(req.name) or []
        except PackageNotFoundError:
            continue
        for dep in map(Requirement, deps):
            env = [{"extra": e} for e in extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(e) for e in env):
                todo.append((dep, frozenset(dep.extras)))
    return seen


def test_the_serve_extra_has_no_torch_and_no_mlflow_server() -> None:
    extras = _extras()
    serve = {canonicalize_name(r.name) for r in extras["serve"]}
    assert {"onnxruntime", "uvicorn", "prometheus-client", "mlflow-skinny"} <= serve
    installed = _closure(extras["core"] + extras["serve"])
    assert not installed & {"torch", "mlflow", "sqlalchemy", "alembic", "flask", "gunicorn",
                            "pyarrow", "plotly", "hera", "onnx", "onnxscript"}


def test_the_lock_pins_every_declared_dependency() -> None:
    locked = _lock()
    for extra, reqs in _extras().items():
        for r in reqs:
            name = canonicalize_name(r.name)
            if name == "finmlops":
                continue
            assert name in locked, f"{r} ({extra}) is not in requirements.lock: run `make lock`"
            assert r.specifier.contains(locked[name], prereleases=True), (
                f"requirements.lock has {name}=={locked[name]}, pyproject.toml {r}: "
                "run `make lock`")
    assert locked["torch"] == Version("2.13.0+cpu")  # the CPU build, not PyPI's CUDA one
    assert not [n for n in locked if n.startswith("nvidia-")]


INDIRECT = {
    "boto3": "MLflow's S3/MinIO artifact store",
    "s3fs": "fsspec's s3:// store",
    "psycopg": "the PostgreSQL experiment ledger",
}
"""Runtime dependencies no finmlops module imports by name, and who uses them."""


def test_every_runtime_dependency_is_imported_or_used_through_another() -> None:
    from importlib.metadata import packages_distributions

    modules: set[str] = set()
    for path in (REPO / "src" / "finmlops").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    by_module = packages_distributions()
    imported = {canonicalize_name(d) for m in modules for d in by_module.get(m, [])}
    extras = _extras()
    for r in extras["core"] + extras["serve"] + extras["train"]:
        name = canonicalize_name(r.name)
        if name == "finmlops":
            continue
        assert name in imported or name in INDIRECT, f"{r.name}: no module imports it"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[next(i for i, line in enumerate(lines) if not line.startswith("#"))] == "**"
    assert {"!pyproject.toml", "!README.md", "!requirements.lock", "!src/"} <= set(lines)


RECORD_IMPORTS = """
import atexit, json, sys
def dump():
    with open(sys.argv[1], "w") as f:
        json.dump(sorted({m.split(".")[0] for m in list(sys.modules)}), f)
atexit.register(dump)
if len(sys.argv) > 2:
    from finmlops.cli import main
    sys.exit(main(sys.argv[2:]))
"""


def _tiny_model(dest: Path, variant: str) -> None:
    """p = sigmoid(mean of a [batch, 2, 1] window): the smallest model the service loads."""
    write_linear_model(dest, mean_weights(1.0, 2, 1), variant=variant, feature_names=["ret_1"],
                       weights_hash=variant)


@pytest.mark.integration
def test_the_service_imports_only_what_the_serve_extra_installs(tmp_path: Path) -> None:
    """`finmlops serve` answering inference, feedback and metrics loads no distribution
    outside finmlops + finmlops[serve] (so the serving image has what it runs)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    from importlib.metadata import packages_distributions

    import httpx

    for arm in ("baseline", "enhanced"):
        _tiny_model(tmp_path / "models" / arm, arm)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    env["FINMLOPS_HOME"] = str(tmp_path / "home")
    startup = tmp_path / "startup.json"
    subprocess.run([sys.executable, "-c", RECORD_IMPORTS, str(startup)], env=env, check=True)
    served = tmp_path / "served.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_IMPORTS, str(served), "serve", "--port", "0",
         "--model-dir", str(tmp_path / "models")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() else "")
        url = line.split(" on ", 1)[1].split()[0]
        with httpx.Client(base_url=url, timeout=10) as c:
            deadline = time.monotonic() + 60  # a busy machine: the models load slowly
            while time.monotonic() < deadline:
                try:
                    if c.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:  # announced before the socket accepts
                    pass
                time.sleep(0.05)
            r = c.post("/v2/models/direction-ab/infer", json={
                "id": "r1", "inputs": [{"name": "features", "datatype": "FP32",
                                        "shape": [1, 2, 1], "data": [0.1, 0.2]}]})
            assert r.status_code == 200, r.text
            pid = r.json()["parameters"]["prediction_id"]
            assert c.post("/v2/feedback", json={"prediction_id": pid,
                                                 "realized_return": 0.01}).status_code == 200
            assert "finmlops_requests_total" in c.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)  # waits, and closes the pipes
    loaded = set(json.loads(served.read_text())) - set(json.loads(startup.read_text()))
    by_module = packages_distributions()
    dists = {canonicalize_name(d) for m in loaded for d in by_module.get(m, [])}
    extras = _extras()
    allowed = _closure(extras["core"] + extras["serve"]) | {"finmlops"}
    # pandas imports pyarrow whenever it is installed (here it is, for the store); without it
    # pandas works as the service needs, so the serving image does not carry it.
    optional_when_present = {"pyarrow"}
    extra = dists - allowed - optional_when_present
    assert extra == set(), f"the service loads {sorted(extra)}"
    assert {"onnxruntime", "uvicorn"} <= dists
