"""The KServe target: the default arm as the rolled-out revision, the other candidate as the
canary with the experiment's weights, every arm pinned to its published version."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import Settings
from finmlops.deploy import Rendered, render_kserve
from finmlops.errors import ConfigError


def _services(tree: Rendered) -> dict[str, dict[str, Any]]:
    return {path: docs[0]["spec"]["predictor"] for path, docs in tree.objects.items()
            if path.endswith("inferenceservice.yaml")}


def test_the_canary_is_the_challenger_at_the_experiments_weight(
        rendered_kserve: Rendered) -> None:
    services = _services(rendered_kserve)
    canary, default = services["inferenceservice.yaml"], services["default/inferenceservice.yaml"]
    assert canary["canaryTrafficPercent"] == 30  # enhanced's 30 of 70 + 30
    assert canary["model"]["storageUri"] == "s3://finmlops/triton/ibb-direction/v2"
    assert "canaryTrafficPercent" not in default
    assert default["model"]["storageUri"] == "s3://finmlops/triton/ibb-direction/v1"
    for p in (canary, default):
        assert (p["model"]["runtime"], p["model"]["protocolVersion"]) == (
            "kserve-tritonserver", "v2")
        assert p["model"]["modelFormat"] == {"name": "onnx"}
        assert p["model"]["securityContext"]["runAsNonRoot"] is True
    (isvc,) = rendered_kserve.objects["inferenceservice.yaml"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    kustomizations = {k: v[0]["resources"] for k, v in rendered_kserve.objects.items()
                      if k.endswith("kustomization.yaml")}
    assert kustomizations == {"kustomization.yaml": ["inferenceservice.yaml",
                                                     "serviceaccount.yaml"],
                              "default/kustomization.yaml": ["inferenceservice.yaml",
                                                             "serviceaccount.yaml"]}


def test_both_arms_on_one_version_is_no_canary(default_settings: Settings) -> None:
    services = _services(render_kserve(default_settings, {"baseline": "4", "enhanced": "4"}))
    assert all("canaryTrafficPercent" not in p for p in services.values())
    assert {p["model"]["storageUri"] for p in services.values()} == {
        "s3://finmlops/triton/ibb-direction/v4"}


def test_kserve_splits_two_ways_and_has_no_mirror(make_settings: Any,
                                                  pinned: dict[str, str]) -> None:
    three = make_settings(
        FINMLOPS_TRAIN__VARIANTS='{"baseline": {}, "enhanced": {}, "wide": {"window": 5}}',
        FINMLOPS_EXPERIMENT__CANDIDATES='[{"name": "baseline", "weight": 50}, '
                                        '{"name": "enhanced", "weight": 25}, '
                                        '{"name": "wide", "weight": 25}]')
    with pytest.raises(ConfigError, match="two ways"):
        render_kserve(three, {**pinned, "wide": "3"})
    mirrored = make_settings(FINMLOPS_EXPERIMENT__MIRROR='{"name": "enhanced", "percent": 50}')
    assert render_kserve(mirrored, pinned).notes == [
        "KServe has no shadow traffic: experiment.mirror (enhanced, 50%) is not rendered"]
    with pytest.raises(ConfigError, match="no registered version for arm 'enhanced'"):
        render_kserve(mirrored, {"baseline": "1"})


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weights=st.lists(st.integers(0, 1000), min_size=2, max_size=2).filter(lambda w: sum(w)),
       default_first=st.booleans())
def test_canary_percent_is_the_challengers_share(weights: list[int], default_first: bool,
                                                 pinned: dict[str, str]) -> None:
    default = "baseline" if default_first else "enhanced"
    s = Settings(experiment={"default": default, "candidates": [
        {"name": "baseline", "weight": weights[0]}, {"name": "enhanced", "weight": weights[1]}]})
    services = _services(render_kserve(s, pinned))
    share = weights[1] if default_first else weights[0]
    assert services["inferenceservice.yaml"]["canaryTrafficPercent"] == round(
        100 * share / sum(weights))
    assert 0 <= services["inferenceservice.yaml"]["canaryTrafficPercent"] <= 100
    assert services["default/inferenceservice.yaml"]["model"]["storageUri"].endswith(
        f"/v{pinned[default]}")
