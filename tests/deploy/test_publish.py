"""``finmlops models publish`` writes each registered version as a Triton model repository, and
the Seldon and KServe manifests point at exactly what it wrote (local and on moto's S3)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmlops.cli import main
from finmlops.config import Settings
from finmlops.deploy import config_pbtxt, publish_version
from finmlops.errors import ConfigError, StoreError

REPO = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = REPO / ".venv-mlserver" / "bin" / "python"
MODEL = "ibb-direction"
BUCKET = "finmlops-publish-test"
# Triton's own ModelConfig message: a strict protobuf text-format parse (unknown field or enum
# value = error), run in the tools venv where tritonclient lives with its protobuf pin.
PARSE = """
import json, sys
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
config = text_format.Parse(open(sys.argv[1]).read(), model_config_pb2.ModelConfig())
print(json_format.MessageToJson(config, preserving_proto_field_name=True))
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """``cli(settings, *args)``: the real entry point on ``settings.home``; ``--json`` output
    parsed, else the exit code."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)

    def run(settings: Settings, *args: str, capsys: pytest.CaptureFixture[str]) -> Any:
        monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
        if settings.deploy.model_repository:
            monkeypatch.setenv("FINMLOPS_DEPLOY__MODEL_REPOSITORY",
                               settings.deploy.model_repository)
        if settings.data.s3_endpoint_url:
            monkeypatch.setenv("FINMLOPS_DATA__S3_ENDPOINT_URL", settings.data.s3_endpoint_url)
        code = main(list(args))
        out = capsys.readouterr()
        if "--json" in args and code == 0:
            return json.loads(out.out)
        return code, out.err

    return run


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _graph_io(onnx_path: Path) -> dict[str, list[tuple[str, int, list[int]]]]:
    """(name, ONNX element type, dims with -1 for symbolic) of the graph's inputs/outputs."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name for i in graph.initializer}

    def io(values: Any) -> list[tuple[str, int, list[int]]]:
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_value if d.HasField("dim_value") else -1
                  for d in v.type.tensor_type.shape.dim]) for v in values
                if v.name not in inits]

    return {"input": io(graph.input), "output": io(graph.output)}


def _parse_config(path: Path) -> dict[str, Any]:
    if not TOOLS_PYTHON.is_file():
        pytest.skip(f"tritonclient (Triton's model_config.proto) is not installed in "
                    f"{TOOLS_PYTHON.parents[1]}: run `make mlserver-venv`")
    out = subprocess.run([str(TOOLS_PYTHON), "-c", PARSE, str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def test_publish_writes_one_triton_repository_per_version(
        registry: Callable[..., Settings], cli: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = registry()
    root = tmp_path / "triton"
    report = cli(settings, "models", "publish", "--to", str(root), "--json", capsys=capsys)
    assert [(r["version"], r["variant"], r["created"]) for r in report["published"]] == [
        ("1", "baseline", True), ("2", "enhanced", True)]
    for v in ("1", "2"):
        repo = root / MODEL / f"v{v}"
        assert report["published"][int(v) - 1]["repository"] == str(repo)
        # Exactly the Triton layout: one model folder, its config, one version directory.
        assert _files(repo) == {f"{MODEL}/config.pbtxt", f"{MODEL}/{v}/model.onnx",
                                f"{MODEL}/{v}/model.json", "published.json"}
        marker = json.loads((repo / "published.json").read_text())
        assert marker["files"][f"{MODEL}/{v}/model.onnx"] == hashlib.sha256(
            (repo / MODEL / v / "model.onnx").read_bytes()).hexdigest()
        card = json.loads((repo / MODEL / v / "model.json").read_text())
        assert (card["model_version"], card["registered_model"]) == (v, MODEL)
        assert "aliases" not in card  # aliases move; published bytes never do


@pytest.mark.integration
def test_config_pbtxt_is_triton_valid_and_matches_the_graph(
        registry: Callable[..., Settings], cli: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import TensorProto

    settings = registry()
    root = tmp_path / "triton"
    assert cli(settings, "models", "publish", "--to", str(root), capsys=capsys)[0] == 0
    triton_types = {TensorProto.FLOAT: "TYPE_FP32"}
    for v in ("1", "2"):
        folder = root / MODEL / f"v{v}" / MODEL
        config = _parse_config(folder / "config.pbtxt")
        assert config["platform"] == "onnxruntime_onnx"
        assert config.get("max_batch_size", 0) == 0  # batch is the explicit -1 dimension
        assert config["version_policy"] == {"specific": {"versions": [v]}}
        assert "name" not in config  # Triton and Seldon name the model by its folder
        graph = _graph_io(folder / v / "model.onnx")
        for kind in ("input", "output"):
            declared = [(t["name"], t["data_type"], [int(d) for d in t["dims"]])
                        for t in config[kind]]
            assert declared == [(n, triton_types[e], dims) for n, e, dims in graph[kind]]
        assert graph["input"][0][2][0] == -1 and graph["output"][0][2] == [-1]


def test_publishing_again_changes_nothing_and_other_bytes_are_refused(
        registry: Callable[..., Settings], cli: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], exported: Callable[[str, int], Path]) -> None:
    settings = registry()
    root = tmp_path / "triton"
    cli(settings, "models", "publish", "--to", str(root), "--version", "1", "--json",
        capsys=capsys)
    marker = root / MODEL / "v1" / "published.json"
    before = marker.read_bytes()
    again = cli(settings, "models", "publish", "--to", str(root), "--version", "baseline",
                "--json", capsys=capsys)
    assert [(r["version"], r["created"]) for r in again["published"]] == [("1", False)]
    assert marker.read_bytes() == before
    # Another graph claiming version 1 at the same place (another registry): refused.
    other = exported("baseline", 1) / "model.onnx"
    with pytest.raises(StoreError, match=r"already holds another model\.onnx"):
        publish_version(other, {"inputs": [{"name": "features", "datatype": "FP32",
                                            "shape": [-1, 6, 5]}],
                                "outputs": [{"name": "probability", "datatype": "FP32",
                                             "shape": [-1]}]},
                        model=MODEL, version="1", root=str(root))
    assert marker.read_bytes() == before


def test_config_pbtxt_rejects_what_triton_could_not_load() -> None:
    sig = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 20, 21]}],
           "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1]}]}
    text = config_pbtxt(sig, "12", model=MODEL)
    assert 'name: "features"' in text and "dims: [ -1, 20, 21 ]" in text
    assert "versions: [ 12 ]" in text and "\nname:" not in text
    for bad_version in ("0", "v1", "-3"):
        with pytest.raises(ConfigError, match="version number"):
            config_pbtxt(sig, bad_version)
    with pytest.raises(ConfigError, match="no Triton type"):
        config_pbtxt({**sig, "outputs": [{"name": "p", "datatype": "COMPLEX64",
                                          "shape": [-1]}]}, "1")
    with pytest.raises(ConfigError, match="inputs and outputs"):
        config_pbtxt({"inputs": [], "outputs": sig["outputs"]}, "1")


# -- on S3: publish, then render, then check every storage path is what publish wrote -------


@pytest.fixture
def s3_settings(s3_endpoint: str, registry: Callable[..., Settings],
                monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Settings:
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(key, raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    return registry(deploy={"model_repository": f"s3://{BUCKET}/{request.node.name}"},
                    data={"s3_endpoint_url": s3_endpoint})


@pytest.fixture
def bucket_keys(s3_endpoint: str) -> Iterator[Callable[[str], set[str]]]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def keys(uri: str) -> set[str]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=prefix + "/")
        return {o["Key"][len(prefix) + 1:] for page in pages for o in page.get("Contents", [])}

    yield keys


def _render(cli: Callable[..., Any], settings: Settings, target: str, out: Path,
            capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    report = cli(settings, "deploy", "render", "--target", target, "--out", str(out), "--json",
                 capsys=capsys)
    assert report["versions"]
    return [d for f in sorted(out.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") != "Kustomization"]


@pytest.mark.integration
def test_seldon_and_kserve_point_at_what_publish_wrote(
        s3_settings: Settings, cli: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], bucket_keys: Callable[[str], set[str]],
        crd_validate: Any) -> None:
    root = s3_settings.deploy.model_repository
    assert root is not None
    # Before publishing, nothing may point at the bucket.
    code, err = cli(s3_settings, "deploy", "render", "--target", "seldon", "--out",
                    str(tmp_path / "none"), capsys=capsys)
    assert code == 6 and "run `finmlops models publish` first" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    published = cli(s3_settings, "models", "publish", "--json", capsys=capsys)
    assert published["root"] == root and len(published["published"]) == 2

    models = [o for o in _render(cli, s3_settings, "seldon", tmp_path / "seldon", capsys)
              if o["kind"] == "Model"]
    assert {m["metadata"]["name"]: m["spec"]["artifactVersion"] for m in models} == {
        "baseline": 1, "enhanced": 2}
    for m in models:
        assert crd_validate(m) == []
        v = m["spec"]["artifactVersion"]
        # Seldon's agent reads config.pbtxt beside the artifactVersion folder.
        assert bucket_keys(m["spec"]["storageUri"]) == {
            "config.pbtxt", f"{v}/model.onnx", f"{v}/model.json"}

    tree = _render(cli, s3_settings, "kserve", tmp_path / "kserve", capsys)
    services = [o for o in tree if o["kind"] == "InferenceService"]
    assert len(services) == 2  # the canary state and default/
    for isvc in services:
        assert crd_validate(isvc) == []
        predictor = isvc["spec"]["predictor"]
        uri = predictor["model"]["storageUri"]
        v = uri.rsplit("/v", 1)[1]
        # KServe's Triton runtime gets a model repository: <model>/config.pbtxt, <model>/<v>/.
        assert bucket_keys(uri) == {f"{MODEL}/config.pbtxt", f"{MODEL}/{v}/model.onnx",
                                    f"{MODEL}/{v}/model.json", "published.json"}
    by_state = {"canaryTrafficPercent" in s["spec"]["predictor"]: s for s in services}
    assert by_state[True]["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert by_state[True]["spec"]["predictor"]["model"]["storageUri"].endswith("/v2")
    assert by_state[False]["spec"]["predictor"]["model"]["storageUri"].endswith("/v1")


@pytest.mark.integration
def test_an_alias_move_reaches_the_manifests_once_published(
        registry: Callable[..., Settings], cli: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], exported: Callable[[str, int], Path],
        add_version: Callable[[Settings, Path, str], str]) -> None:
    settings = registry(deploy={"model_repository": str(tmp_path / "triton")})
    cli(settings, "models", "publish", "--json", capsys=capsys)

    def pinned() -> dict[str, Any]:
        objs = _render(cli, settings, "seldon", tmp_path / "seldon", capsys)
        return {o["metadata"]["name"]: o["spec"]["storageUri"] for o in objs
                if o["kind"] == "Model"}

    before = pinned()
    assert add_version(settings, exported("enhanced", 3), "enhanced") == "3"  # a retrain
    code, err = cli(settings, "deploy", "render", "--target", "seldon", "--out",
                    str(tmp_path / "seldon"), capsys=capsys)
    assert code == 6 and "version 3" in err and "not published" in err
    cli(settings, "models", "publish", "--version", "enhanced", "--json", capsys=capsys)
    after = pinned()
    assert after["baseline"] == before["baseline"]
    assert after["enhanced"] == str(tmp_path / "triton" / MODEL / "v3" / MODEL)
    # --model-version pins an arm back, if that version is published.
    objs = yaml.safe_load_all((tmp_path / "seldon" / "models.yaml").read_text())
    assert [o["spec"]["artifactVersion"] for o in objs] == [1, 3]
    cli(settings, "deploy", "render", "--target", "seldon", "--out", str(tmp_path / "seldon"),
        "--model-version", "enhanced=2", "--json", capsys=capsys)
    objs = yaml.safe_load_all((tmp_path / "seldon" / "models.yaml").read_text())
    assert [o["spec"]["artifactVersion"] for o in objs] == [1, 2]
