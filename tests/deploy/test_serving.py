"""The serving pods are stateless: one worker each, the ledger in PostgreSQL (from a Secret),
a preStop pause, and a grace period that covers the server's own drain."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import pod_settings
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import Settings
from finmlops.deploy import Rendered, render_kubernetes
from finmlops.deploy.serving import MODELS_SIZE, deployment, termination_grace_s

DSN = "postgresql://finmlops:pw@finmlops-ledger-rw.finmlops-ledger.svc:5432/finmlops"
SECRETS = {("finmlops-ledger", "url"): DSN,
           ("finmlops-inference-token", "token"): "tok-inference",
           ("finmlops-feedback-token", "token"): "tok-feedback",
           ("finmlops-admin-token", "token"): "tok-admin",
           ("finmlops-s3", "access-key-id"): "k", ("finmlops-s3", "secret-access-key"): "s"}


def _serving(tree: Rendered) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(pod spec, container, the inference namespace's ConfigMap)."""
    dep = next(o for o in tree.manifests() if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "finmlops-serving")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = next(o for o in tree.manifests() if o["kind"] == "ConfigMap"
                  and o["metadata"]["namespace"] == "finmlops-inference")
    return pod, container, config


def test_the_pod_starts_with_the_ledger_tokens_and_one_worker(make_settings: Any,
                                                               tmp_path: Path) -> None:
    """The settings ``finmlops serve`` loads in the pod, from the mounted file and the
    environment: PostgreSQL from the Secret (never SQLite in the pod), the three scoped
    tokens, and one worker even when the configuration asks for more on a laptop."""
    tree = render_kubernetes(make_settings(FINMLOPS_SERVE__WORKERS="4"))
    _, container, config = _serving(tree)
    assert "workers" not in yaml.safe_load(config["data"]["finmlops.yaml"])["serve"]
    s = pod_settings(container, config, SECRETS, tmp_path)
    assert s.ledger_url == DSN
    assert s.serve.workers == 1
    assert (s.serve.host, s.serve.port) == ("0.0.0.0", 8080)
    assert {scope: getattr(s.serve.tokens, scope).get_secret_value()
            for scope in ("inference", "feedback", "admin")} == {
        "inference": "tok-inference", "feedback": "tok-feedback", "admin": "tok-admin"}


def test_no_ledger_on_a_pod_volume(rendered: Rendered) -> None:
    pod, container, config = _serving(rendered)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"home", "tmp", "config"}
    assert not [v for v in volumes.values() if "persistentVolumeClaim" in v]
    # The home emptyDir holds only the models downloaded at start.
    assert volumes["home"]["emptyDir"] == {"sizeLimit": MODELS_SIZE}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    text = config["data"]["finmlops.yaml"]
    assert "url" not in yaml.safe_load(text)["ledger"]
    assert "tokens" not in yaml.safe_load(text)["serve"]


def test_probes_and_prestop(rendered: Rendered) -> None:
    pod, container, _ = _serving(rendered)
    paths = {p: container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    assert paths == {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep == Settings().deploy.prestop_sleep_s
    assert pod["terminationGracePeriodSeconds"] > sleep


@pytest.mark.parametrize(("request_timeout", "write_timeout", "prestop"),
                         [("10", "2", "5"), ("37.5", "4.5", "12"), ("1", "60", "1")])
def test_grace_period_covers_the_servers_own_drain(make_settings: Any,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   request_timeout: str, write_timeout: str,
                                                   prestop: str) -> None:
    """``finmlops serve`` is run (uvicorn stubbed) to read the graceful-shutdown timeout it
    really configures; the pod's grace period must hold the preStop sleep, that drain and a
    last ledger commit."""
    import uvicorn

    from finmlops.serving import factory, server

    settings = make_settings(FINMLOPS_SERVE__REQUEST_TIMEOUT_S=request_timeout,
                             FINMLOPS_LEDGER__WRITE_TIMEOUT_S=write_timeout,
                             FINMLOPS_DEPLOY__PRESTOP_SLEEP_S=prestop)
    captured: dict[str, Any] = {}

    class _Server:
        def __init__(self, config: Any) -> None:
            captured["config"] = config

        def run(self, sockets: Any = None) -> None:
            captured["ran"] = True

    class _Socket:
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", 8080)

    for name in (factory.SETTINGS_ENV, factory.MODELS_ENV, factory.CONFIG_ENV):
        monkeypatch.setenv(name, "")  # serve() sets them; monkeypatch restores them
    monkeypatch.setattr(uvicorn, "Server", _Server)
    monkeypatch.setattr(server, "bind", lambda host, port: _Socket())
    monkeypatch.setattr(server.signal, "signal", lambda *args: None)
    monkeypatch.setattr(server.sys, "setswitchinterval", lambda interval: None)
    server.serve(settings, {})
    assert captured["ran"]
    drain = captured["config"].timeout_graceful_shutdown
    assert drain >= float(request_timeout)  # in-flight requests may use their whole timeout
    pod = deployment(settings)["spec"]["template"]["spec"]
    needed = int(prestop) + drain + math.ceil(float(write_timeout))
    assert pod["terminationGracePeriodSeconds"] == termination_grace_s(settings) > needed
    assert pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == int(prestop)


@hsettings(max_examples=30, deadline=None)
@given(request_timeout=st.floats(0.1, 118), write_timeout=st.floats(0.1, 58),
       prestop=st.integers(1, 58))
def test_grace_period_exceeds_and_follows_every_part_of_the_drain(request_timeout: float,
                                                                  write_timeout: float,
                                                                  prestop: int) -> None:
    def grace(r: float, w: float, p: int) -> int:
        return termination_grace_s(Settings(serve={"request_timeout_s": r},
                                            ledger={"write_timeout_s": w},
                                            deploy={"prestop_sleep_s": p}))

    base = grace(request_timeout, write_timeout, prestop)
    assert base > prestop + request_timeout + write_timeout
    assert grace(request_timeout + 2, write_timeout, prestop) > base
    assert grace(request_timeout, write_timeout + 2, prestop) > base
    assert grace(request_timeout, write_timeout, prestop + 2) > base
