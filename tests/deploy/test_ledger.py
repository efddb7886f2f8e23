"""The ledger's PostgreSQL (a CloudNativePG Cluster): durable commits, a synchronous standby
where there is one, bootstrap from a referenced Secret, and room for every client."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import Settings
from finmlops.deploy import Rendered, environment_settings, render_kubernetes
from finmlops.deploy.ledger import (
    RESERVED_CONNECTIONS,
    client_connections,
    cluster,
    example_dsn,
    ledger_host,
)
from finmlops.errors import ConfigError


def _cluster(tree: Rendered) -> dict[str, Any]:
    (obj,) = [o for o in tree.manifests() if o["kind"] == "Cluster"]
    return obj


def test_commits_are_durable_and_wait_for_a_standby(rendered: Rendered) -> None:
    spec = _cluster(rendered)["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["parameters"]["synchronous_commit"] == "on"
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1,
                                                 "dataDurability": "required",
                                                 "failoverQuorum": True}
    assert spec["bootstrap"]["initdb"] == {"database": "finmlops", "owner": "finmlops",
                                           "secret": {"name": "finmlops-ledger-owner"},
                                           "dataChecksums": True}
    assert spec["storage"] == {"size": "20Gi"}


@pytest.mark.parametrize(("instances", "expected"), [
    ("1", None),
    ("2", {"method": "any", "number": 1, "dataDurability": "preferred"}),
    ("5", {"method": "any", "number": 1, "dataDurability": "required",
           "failoverQuorum": True}),
])
def test_synchronous_replication_follows_the_instances(make_settings: Any, instances: str,
                                                       expected: Any) -> None:
    spec = cluster(make_settings(FINMLOPS_DEPLOY__LEDGER_INSTANCES=instances))["spec"]
    assert spec["instances"] == int(instances)
    assert spec["postgresql"].get("synchronous") == expected
    assert spec["postgresql"]["parameters"]["synchronous_commit"] == "on"


def test_settings_name_the_secret_and_size(make_settings: Any) -> None:
    spec = cluster(make_settings(FINMLOPS_DEPLOY__LEDGER_OWNER_SECRET="acme-pg-owner",
                                 FINMLOPS_DEPLOY__LEDGER_STORAGE="250Gi"))["spec"]
    assert spec["bootstrap"]["initdb"]["secret"] == {"name": "acme-pg-owner"}
    assert spec["storage"]["size"] == "250Gi"


@pytest.mark.parametrize("bad", ["20 GB", "lots", "-5Gi"])
def test_a_storage_size_that_is_not_a_quantity_is_refused(make_settings: Any, bad: str) -> None:
    with pytest.raises(ConfigError, match="ledger_storage"):
        make_settings(FINMLOPS_DEPLOY__LEDGER_STORAGE=bad)


@hsettings(max_examples=40, deadline=None)
@given(pool=st.integers(1, 64), replicas=st.integers(1, 200))
def test_there_are_connections_for_every_client(pool: int, replicas: int) -> None:
    """Every serving pod's pool at the autoscaler's maximum (plus the surge pod) and a CLI
    step fit under ``max_connections`` with headroom for replication and the operator."""
    s = Settings(ledger={"pool_size": pool}, deploy={"max_replicas": replicas})
    limit = int(cluster(s)["spec"]["postgresql"]["parameters"]["max_connections"])
    assert limit >= 100
    assert limit - client_connections(s) >= RESERVED_CONNECTIONS
    assert client_connections(s) >= pool * (replicas + 1)


def test_the_dsn_host_is_the_primarys_service(rendered: Rendered, make_settings: Any) -> None:
    meta = _cluster(rendered)["metadata"]
    assert ledger_host(Settings()) == f"{meta['name']}-rw.{meta['namespace']}.svc"
    quant = make_settings(FINMLOPS_DEPLOY__ENVIRONMENTS='{"prod": {"namespace_prefix": "quant"}}')
    assert _cluster(render_kubernetes(quant).environment("prod"))["metadata"][
        "namespace"] == "quant-ledger"
    quant = environment_settings(quant, "prod")
    assert example_dsn(quant) == ("postgresql://finmlops:<password>@"
                                  "finmlops-ledger-rw.quant-ledger.svc:5432/finmlops"
                                  "?sslmode=require")
