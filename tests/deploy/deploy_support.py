"""Helpers of the deploy tests (a uniquely named module, so test files can import it): the
semantics of Kubernetes NetworkPolicies and of Gateway API path matches, evaluated over the
rendered objects, and the settings a rendered container would load."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it: its namespace and labels (``namespace=None``: an
    address outside the pod network, such as the API server)."""

    name: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (``matchLabels`` and ``matchExpressions``); ``{}`` selects everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels,
              "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return pod.namespace is None  # only addresses outside the pod network
    if pod.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NS_LABEL: pod.namespace}):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)


def _port_matches(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port)
               for p in ports)


def _rules_allow(rules: list[Mapping[str, Any]], key: str, policy_ns: str, peer: Pod,
                 port: int, protocol: str) -> bool:
    for rule in rules:
        peers = rule.get(key)
        if (not peers or any(_peer_matches(p, policy_ns, peer) for p in peers)) and \
                _port_matches(rule.get("ports"), port, protocol):
            return True
    return False


def _side_allows(policies: Iterable[Mapping[str, Any]], pod: Pod, direction: str,
                 peer: Pod, port: int, protocol: str) -> bool:
    """Whether the policies of ``pod``'s namespace let ``pod`` talk to (Egress) or hear from
    (Ingress) ``peer``: allowed when no policy isolates it in that direction, else when one
    of the isolating policies has a matching rule."""
    if pod.namespace is None:
        return True  # not a pod: no policy applies
    isolating = [p for p in policies
                 if p["metadata"]["namespace"] == pod.namespace
                 and direction in p["spec"].get("policyTypes", [])
                 and selects(p["spec"]["podSelector"], pod.labels)]
    if not isolating:
        return True
    key = "to" if direction == "Egress" else "from"
    field_name = "egress" if direction == "Egress" else "ingress"
    return any(_rules_allow(p["spec"].get(field_name) or [], key, pod.namespace, peer, port,
                            protocol) for p in isolating)


def egress_allows(policies: Iterable[Mapping[str, Any]], src: Pod, dst: Pod, port: int,
                  protocol: str = "TCP") -> bool:
    return _side_allows(list(policies), src, "Egress", dst, port, protocol)


def ingress_allows(policies: Iterable[Mapping[str, Any]], src: Pod, dst: Pod, port: int,
                   protocol: str = "TCP") -> bool:
    return _side_allows(list(policies), dst, "Ingress", src, port, protocol)


def connects(policies: Iterable[Mapping[str, Any]], src: Pod, dst: Pod, port: int,
             protocol: str = "TCP") -> bool:
    """A connection is open when the source's egress and the destination's ingress allow it."""
    pols = list(policies)
    return (egress_allows(pols, src, dst, port, protocol)
            and ingress_allows(pols, src, dst, port, protocol))


def route_matches(match: Mapping[str, Any], path: str) -> bool:
    """A Gateway API ``HTTPRouteMatch`` path: ``Exact`` compares the whole path; ``PathPrefix``
    matches element by element (``/abc`` matches ``/abc`` and ``/abc/def``, not ``/abcd``)."""
    spec = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = spec.get("type", "PathPrefix"), spec["value"]
    if kind == "Exact":
        return path == value
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        return not prefix or path == prefix or path.startswith(prefix + "/")
    raise ValueError(f"unsupported path match {kind}")


def routed(route: Mapping[str, Any], path: str) -> bool:
    """Whether the HTTPRoute sends ``path`` to a backend."""
    return any(route_matches(m, path) for rule in route["spec"]["rules"]
               for m in rule.get("matches") or [{}])


def pod_settings(container: Mapping[str, Any], config_map: Mapping[str, Any],
                 secrets: Mapping[tuple[str, str], str], tmp: Path) -> Any:
    """The settings ``container`` would load: its environment (each ``secretKeyRef`` looked
    up in ``secrets`` by (name, key)) over the mounted ``finmlops.yaml`` from ``config_map``."""
    from finmlops.config import load_settings

    config = tmp / "finmlops.yaml"
    config.write_text(config_map["data"]["finmlops.yaml"], encoding="utf-8")
    env: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
    env["FINMLOPS_CONFIG"] = str(config)
    env["FINMLOPS_HOME"] = str(tmp / "home")
    return load_settings(environ=env)
