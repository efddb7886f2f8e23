"""The experiment ledger's database: a CloudNativePG ``Cluster`` that every serving pod and the
daily workflow share.

The ledger is the experiment's evidence (every answered prediction, every score, every
outcome), so the database is built for "a 200 means committed": ``synchronous_commit = on``
and, with more than one instance, a synchronous standby, so a failover loses no transaction
the service has answered. The owner's credentials come from a Secret the user creates
(``deploy.ledger_owner_secret``); the clients get their DSN from another
(``deploy.ledger_secret``), so no password is ever rendered.
"""

from __future__ import annotations

from finmlops.config import Settings
from finmlops.deploy._k8s import POSTGRES_PORT, Manifest, meta, namespace, resources

CNPG_API = "postgresql.cnpg.io/v1"
LEDGER = "finmlops-ledger"
"""The Cluster's name; CloudNativePG names its Services ``<name>-rw`` (the primary), ``-ro``
and ``-r``, and labels every pod it runs for it ``cnpg.io/cluster: <name>``."""
LEDGER_DATABASE = "finmlops"
LEDGER_OWNER = "finmlops"
"""The database and its owner created at bootstrap; the owner Secret's ``username``."""
CNPG_NAMESPACE = "cnpg-system"
"""Where the CloudNativePG operator runs (its manifest's default); not yet a setting."""
CNPG_OPERATOR_POD = {"app.kubernetes.io/name": "cloudnative-pg"}
"""The label of the operator's pods."""
CNPG_STATUS_PORT = 8000
"""The instance manager's status endpoint, which the operator polls."""

BASE_CONNECTIONS = 100
"""PostgreSQL's default ``max_connections``; raised when the clients could need more."""
RESERVED_CONNECTIONS = 20
"""Headroom above the clients: superuser slots, replication, the instance manager, psql."""
CLI_POOL = 4
"""The pool a ``finmlops abtest`` command opens (``open_ledger``'s default)."""
MAX_SURGE = 1
"""Extra serving pods during a rolling update (the Deployment's ``maxSurge``)."""

LEDGER_RESOURCES = resources("500m", "1Gi", "2", "1Gi")


def instance_pods() -> Manifest:
    """Every pod CloudNativePG runs for the ledger (instances and their bootstrap jobs)."""
    return {"matchLabels": {"cnpg.io/cluster": LEDGER}}


def ledger_host(settings: Settings) -> str:
    """The primary's in-cluster name: the host of the DSN in ``deploy.ledger_secret``."""
    return f"{LEDGER}-rw.{namespace(settings, 'ledger')}.svc"


def example_dsn(settings: Settings) -> str:
    """The DSN the user stores in ``deploy.ledger_secret`` (the password left as a blank)."""
    return (f"postgresql://{LEDGER_OWNER}:<password>@{ledger_host(settings)}:{POSTGRES_PORT}"
            f"/{LEDGER_DATABASE}?sslmode=require")


def client_connections(settings: Settings) -> int:
    """The most connections the ledger's clients can hold at once: each serving pod's pool
    (one worker per pod) at the autoscaler's maximum plus the rollout's surge, and one
    command of the daily workflow (its steps run one at a time)."""
    pods = settings.deploy.max_replicas + MAX_SURGE
    return settings.ledger.pool_size * pods + CLI_POOL


def max_connections(settings: Settings) -> int:
    return max(BASE_CONNECTIONS, client_connections(settings) + RESERVED_CONNECTIONS)


def synchronous(settings: Settings) -> Manifest | None:
    """Quorum replication to one standby. With three or more instances a commit always waits
    for a standby (one may be down without stopping writes) and a failover only promotes a
    standby known to hold every such commit (``failoverQuorum``); with two, CloudNativePG
    falls back to the primary alone while the only standby is away, rather than refusing
    every prediction. One instance has no standby to wait for."""
    n = settings.deploy.ledger_instances
    if n < 2:
        return None
    if n >= 3:
        return {"method": "any", "number": 1, "dataDurability": "required",
                "failoverQuorum": True}
    return {"method": "any", "number": 1, "dataDurability": "preferred"}


def cluster(settings: Settings) -> Manifest:
    d = settings.deploy
    postgresql: Manifest = {"parameters": {
        "synchronous_commit": "on",
        "max_connections": str(max_connections(settings)),
    }}
    sync = synchronous(settings)
    if sync is not None:
        postgresql["synchronous"] = sync
    return {
        "apiVersion": CNPG_API, "kind": "Cluster",
        "metadata": meta(LEDGER, namespace(settings, "ledger"), "ledger"),
        "spec": {
            "description": "finmlops experiment ledger: predictions, scores, outcomes and "
                           "experiment versions",
            "instances": d.ledger_instances,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "enablePDB": True,
            # Only part-of: CloudNativePG sets its own name/component labels on what it runs.
            "inheritedMetadata": {"labels": {"app.kubernetes.io/part-of": "finmlops"}},
            "storage": {"size": d.ledger_storage},
            "resources": LEDGER_RESOURCES,
            "postgresql": postgresql,
            "bootstrap": {"initdb": {
                "database": LEDGER_DATABASE,
                "owner": LEDGER_OWNER,
                "secret": {"name": d.ledger_owner_secret},
                "dataChecksums": True,
            }},
        },
    }
