"""Helpers of the monitoring tests (a uniquely named module, so test files can import it):
asset paths, PromQL name extraction, tiny ONNX models, a live service and traffic against it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_support import mean_weights, write_linear_model

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "src" / "finmlops" / "deploy" / "assets"
RULES = ASSETS / "monitoring" / "alerts.yml"
RULE_TESTS = ASSETS / "monitoring" / "alerts_test.yml"
DASHBOARDS = sorted((ASSETS / "grafana").glob("*.json"))

WINDOW = 3
FEATURES = ["ret_1", "vol_20", "spy_ret_1"]
ARMS = {"baseline": 1.0, "enhanced": -1.0}
"""arm -> weight of p = sigmoid(weight * mean(features))."""

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAMES = re.compile(r"(?<![\w:])(finmlops[_:][\w:]*|up)(?![\w:])")


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (``finmlops_*``, ``finmlops:*`` recordings, ``up``)."""
    return set(_NAMES.findall(_STRINGS.sub('""', expr)))


def load_rules() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return data


def rule_exprs() -> list[str]:
    return [r["expr"] for g in load_rules()["groups"] for r in g["rules"]]


def recorded_names() -> set[str]:
    return {r["record"] for g in load_rules()["groups"] for r in g["rules"] if "record" in r}


def dashboard_targets() -> list[tuple[str, str, str]]:
    """``(dashboard file, panel title, expr)`` of every query of every dashboard."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                out.append((path.name, panel["title"], t["expr"]))
        out.extend((path.name, f"variable {v['name']}", v["definition"])
                   for v in board["templating"]["list"] if v["type"] == "query")
    return out


def write_model(dest: Path, arm: str, version: str) -> Path:
    """An exported model dir: ``sigmoid(w * mean(features))`` with a drift reference."""
    from finmlops.monitoring import build_reference

    rng = np.random.default_rng(0)
    reference = build_reference(rng.normal(size=(400, len(FEATURES))), FEATURES,
                                predictions=rng.uniform(size=400))
    return write_linear_model(dest, mean_weights(ARMS[arm], WINDOW, len(FEATURES)),
                              variant=arm, feature_names=FEATURES, reference=reference,
                              model_version=version,
                              aliases=["champion"] if arm == "baseline" else ["challenger"])


@dataclass
class Service:
    url: str
    port: int
    ledger_url: str
    client: Any
    app: Any
    settings: Any


@contextmanager
def running_service(home: Path, models: dict[str, Path]) -> Iterator[Service]:
    """A real service (shadow scoring on, so paired series exist) on a free loopback port,
    its ledger in ``home``."""
    import httpx

    from finmlops.config import Settings
    from finmlops.serving import create_app, run_in_thread

    # summaries every 0.2 s: the finmlops_ledger_* gauges follow the ledger within the test
    settings = Settings(home=home, experiment={"shadow": True},
                        ledger={"summary_interval_s": 0.2})
    app = create_app(settings, models)
    handle = run_in_thread(app, "127.0.0.1", 0, timeout=60)
    client = httpx.Client(base_url=handle.url, timeout=30)
    try:
        yield Service(handle.url, handle.port, settings.ledger_url, client, app, settings)
    finally:
        client.close()
        handle.stop()


def traffic(client: Any, n: int, seed: int = 0, shift: float = 0.0,
            arm: str | None = None) -> list[str]:
    """``n`` single-row requests to the experiment (pinned to ``arm`` if given), then
    feedback for each, addressed by the prediction id its answer carried; returns those ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        x = rng.normal(loc=shift, size=(1, WINDOW, len(FEATURES))).astype(np.float32)
        body = {"id": f"req-{seed}-{i}", "inputs": [
            {"name": "features", "datatype": "FP32", "shape": list(x.shape),
             "data": x.reshape(-1).tolist()}]}
        headers = {"x-routing-key": f"user-{seed}-{i}"}
        if arm is not None:
            headers["x-seldon-route"] = f":{arm}_1:"
        r = client.post("/v2/models/direction-ab/infer", json=body, headers=headers)
        assert r.status_code == 200, r.text
        ids.append(r.json()["parameters"]["prediction_id"])
    outcomes = [{"prediction_id": pid, "realized_return": float(rng.normal(0.0005, 0.01))}
                for pid in ids]
    r = client.post("/v2/feedback", json={"outcomes": outcomes})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == n
    return ids


def contract_names() -> set[str]:
    """Every sample name the metric set can export (touching each label set once)."""
    from prometheus_client import Counter, Gauge, Histogram, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from finmlops.monitoring import create_metrics

    m = create_metrics()
    for metric in vars(m).values():
        if isinstance(metric, Counter | Gauge | Histogram):
            names = metric._labelnames
            child = metric.labels(*["x"] * len(names)) if names else metric
            if isinstance(metric, Histogram):
                child.observe(0.01)
            elif isinstance(metric, Counter):
                child.inc()
            else:
                child.set(1)
    text = generate_latest(m.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}
