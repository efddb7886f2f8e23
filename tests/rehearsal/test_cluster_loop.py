"""The rehearsal: the rendered cluster loop, run on one machine against real servers.

Real server-mode parts: an MLflow tracking server (``mlflow server`` from the rendered
Deployment, PostgreSQL backend store, artifacts on moto's S3 server), the PostgreSQL ledger,
three serving replicas (the rendered serving Deployment, ``finmlops serve``) behind nginx, and
a bare Git repository as the config repository. The rendered workflows' steps run in order
through :mod:`argo_support` with their rendered commands, arguments and environment:

data → train → register → publish → serve → predict → feedback → drift → decide → GitOps
commit → (Argo CD's sync) promotion applied → ``git revert`` → rolled back; then a planted
shift in the bars → drift alarm → a training run → a challenger; and a stale day → the exit
handler's failure report.

Bridges, said plainly: the rendered config ingests from Yahoo; no network is reachable here,
so the environment's config points ``data.source_url`` at a local server answering in Yahoo's
format (``market.py``), and the endpoints the render names (MinIO, MLflow, the repository) are
the local servers'. Argo CD is played by the test: it reads the committed promotion record
from the repository and runs the rendered PostSync hook, as a sync would. Pods share one
address, so each listens on a port of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from argo_support import Cluster, Pod, Run, python_env, start_pod, wait_http
from market import Market, synthetic_bars, weekdays, yahoo_server

from finmlops.config import load_settings
from finmlops.deploy import Rendered, render_kubernetes, write_rendered
from postgres_support import free_port
from s3_support import moto_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ENV = "rehearsal"
PREFIX = "finmlops-rehearsal"
START = dt.date(2014, 1, 2)
TRAIN_DAYS, LIVE_DAYS, SHIFT_DAYS = 1000, 70, 12
REPLICAS = 3
SENTINELS = {"inference": "inf-SENTINEL-31", "feedback": "fb-SENTINEL-32",
             "admin": "adm-SENTINEL-33", "git": "git-SENTINEL-34"}
CONFIG = """
data:
  tickers: [IBB, SPY]
  start: 2014-01-02
  source_url: {yahoo}
features: {{target: [IBB], context: [SPY]}}
train:
  cutoff: null
  min_train_years: 2
  variants:
    baseline: {{architecture: mlp, features: core, window: 2, hidden: 8, epochs: 5,
                patience: 2, learning_rate: 0.01}}
    enhanced: {{architecture: mlp, features: full, window: 2, hidden: 16, epochs: 20,
                patience: 5, learning_rate: 0.01}}
abtest: {{metric: hit_rate, min_samples: 10}}
monitoring: {{drift_window_days: 10}}
ledger: {{poll_interval_s: 0.5}}
deploy:
  s3_endpoint: {s3}
  mlflow_uri: http://127.0.0.1:{mlflow_port}
  git_repo: {repo}
  environments:
    {env}: {{namespace_prefix: {prefix}, auto_sync: true, promotion: commit,
             replicas: {replicas}, max_replicas: {replicas}, ledger_instances: 1}}
"""


def _at(day: dt.date) -> dt.datetime:
    """When the daily job of ``day`` starts: 22:30 in New York, i.e. 03:30 UTC the next day."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(3, 30), dt.UTC)


def _objects(tree: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in tree.manifests()}


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "operator",
                               "GIT_AUTHOR_EMAIL": "op@example.com",
                               "GIT_COMMITTER_NAME": "operator",
                               "GIT_COMMITTER_EMAIL": "op@example.com",
                               "HOME": str(cwd or Path.cwd())}).stdout


def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _check(run: Run, status: str = "Succeeded") -> Run:
    if run.status != status:
        failed = [n for n in run.nodes if n.phase == "Failed"]
        detail = "\n".join(f"--- {n.name} (exit {n.exit_code})\n{n.stdout[-2000:]}\n"
                           f"{n.stderr[-4000:]}" for n in failed)
        raise AssertionError(f"{run.name}: {run.status}, expected {status}\n{detail}")
    return run


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as con:
        return list(con.execute(query, params).fetchall())


@pytest.fixture
def needs() -> None:
    from replica_support import nginx_skip_reason

    reason = nginx_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("git") is None:
        pytest.skip("git not installed")


def test_the_rendered_cluster_loop_runs_against_real_servers(
        tmp_path: Path, postgres: Any, needs: None) -> None:
    from replica_support import Replica, start_balancer

    days = weekdays(START, TRAIN_DAYS + LIVE_DAYS + SHIFT_DAYS)
    d0, d1, d2 = days[TRAIN_DAYS - 1], days[TRAIN_DAYS + LIVE_DAYS - 1], days[-1]
    market = Market(synthetic_bars(days, seed=7, shift_after=d1), until=d0)
    pods: list[Pod] = []
    with ExitStack() as stack:
        stack.callback(lambda: [p.stop() for p in pods])
        yahoo = stack.enter_context(yahoo_server(market))
        s3_url = stack.enter_context(moto_server())
        s3 = _s3(s3_url)
        s3.create_bucket(Bucket="finmlops")
        mlflow_port = free_port()
        ledger_url = postgres.create_database()
        mlflow_db = postgres.create_database().replace("postgresql://", "postgresql+psycopg://")

        # The config repository, holding the rendered tree as a team commits it.
        repo = tmp_path / "config.git"
        _git("init", "--quiet", "--bare", "--initial-branch=main", str(repo))
        cfg = tmp_path / "finmlops.yaml"
        cfg.write_text(CONFIG.format(yahoo=yahoo, s3=s3_url, mlflow_port=mlflow_port,
                                     repo=f"file://{repo}", env=ENV, prefix=PREFIX,
                                     replicas=REPLICAS), encoding="utf-8")
        settings = load_settings(cfg, environ={})
        tree = render_kubernetes(settings)
        work = tmp_path / "work"
        _git("clone", "--quiet", str(repo), str(work))
        write_rendered(tree, work / "deploy" / "k8s")
        _git("add", "--all", cwd=work)
        _git("commit", "--quiet", "-m", "the rendered tree", cwd=work)
        _git("push", "--quiet", "origin", "HEAD:main", cwd=work)

        objs = _objects(tree.environment(ENV))
        config_maps = {o["metadata"]["name"]: o["data"] for o in tree.manifests()
                       if o["kind"] == "ConfigMap"
                       and o["metadata"]["namespace"] == f"{PREFIX}-pipelines"}
        s = settings.deploy
        secrets = {
            (s.s3_secret, "access-key-id"): "testing",
            (s.s3_secret, "secret-access-key"): "testing",
            (s.mlflow_secret, "backend-store-uri"): mlflow_db,
            (s.ledger_secret, "url"): ledger_url,
            (s.inference_token_secret, "token"): SENTINELS["inference"],
            (s.feedback_token_secret, "token"): SENTINELS["feedback"],
            (s.admin_token_secret, "token"): SENTINELS["admin"],
            (s.git_secret, "token"): SENTINELS["git"],
        }
        cluster = Cluster(
            root=tmp_path / "cluster",
            templates={n: o for (k, n), o in objs.items() if k == "WorkflowTemplate"},
            config_maps=config_maps, secrets=secrets,
            s3=lambda endpoint, bucket, key, path: _s3(endpoint).upload_file(path, bucket,
                                                                             key),
            extra_env=python_env())

        # -- MLflow: the rendered Deployment (PostgreSQL backend store, artifacts on S3) --
        mlflow = start_pod(cluster, objs[("Deployment", "mlflow")], "mlflow", mlflow_port)
        pods.append(mlflow)
        wait_http(f"{mlflow.url}/health", mlflow)

        # -- data: ingest and validate; the dataset version is the workflow's output ------
        data = _check(cluster.run(objs[("WorkflowTemplate", "finmlops-data")],
                                  created=_at(d0)))
        dv0 = data.outputs["dataset_version"]
        assert data.node("validate").outputs["newest"] == d0.isoformat()

        # -- training on exactly that version: train, evaluate, register, publish ---------
        training = _check(cluster.run(objs[("WorkflowTemplate", "finmlops-training")],
                                      parameters={"dataset_version": dv0}, created=_at(d0)))
        assert training.mutexes == ["finmlops-registry"]
        assert training.outputs["dataset_version"] == dv0
        registered = json.loads(training.outputs["registered"])
        assert set(registered) == {"baseline", "enhanced"}
        run_ids = json.loads(training.outputs["run_ids"])
        assert len(run_ids) == 2 and len(set(run_ids)) == 2
        versions = {v: info["version"] for v, info in registered.items()}
        key = training.artifacts["evaluation-json"]
        evaluation = json.loads(s3.get_object(Bucket="finmlops", Key=key)["Body"].read())
        assert evaluation["dataset_version"] == dv0
        published = json.loads(training.node("publish").outputs["published"])
        for version, root in published.items():
            bucket, _, prefix = root.removeprefix("s3://").partition("/")
            marker = s3.get_object(Bucket=bucket, Key=f"{prefix}/published.json")
            assert json.loads(marker["Body"].read())["files"], version
        assert set(published) == set(versions.values())

        # Lineage in MLflow: each run pins dv0 (tag and dataset input); each version too.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=mlflow.url)
        for rid in run_ids:
            run = client.get_run(rid)
            assert run.data.tags["data_version"] == dv0
            assert any(dv0 in (i.dataset.digest, i.dataset.name) or dv0 in i.dataset.source
                       for i in run.inputs.dataset_inputs), run.inputs
        model = settings.registered_model
        for version in versions.values():
            assert client.get_model_version(model, version).tags["data_version"] == dv0

        # -- serve: the rendered serving Deployment, three replicas behind nginx ----------
        serving_ports = [free_port() for _ in range(REPLICAS)]
        for i, port in enumerate(serving_ports):
            pods.append(start_pod(cluster, objs[("Deployment", "finmlops-serving")],
                                  f"serving-{i}", port))
        for pod in pods[1:]:
            wait_http(f"{pod.url}/v2/health/ready", pod)
        balancer = start_balancer(tmp_path / "nginx", [
            Replica(p.name, p.home, p.proc, p.url) for p in pods[1:]])  # type: ignore[arg-type]
        stack.callback(balancer.stop)

        # -- the daily job after the live period: predict (backfilling since the models
        #    went live), feedback, drift, decide → a GitOps commit --------------------------
        market.until = d1
        first_live = days[TRAIN_DAYS]
        daily = objs[("CronWorkflow", "finmlops-daily")]
        day1 = _check(cluster.run(daily, created=_at(d1), parameters={
            "since": first_live.isoformat(), "service_url": balancer.url}))
        assert [n.name for n in day1.nodes if n.phase == "Succeeded"][:6] == [
            "ingest", "validate", "predict", "feedback", "drift", "decide"]
        assert day1.node("drift").outputs["alarm"] == "false"
        assert day1.node("retrain").phase == "Skipped" and not day1.created
        dv1 = day1.node("validate").outputs["dataset_version"]
        assert dv1 != dv0

        predictions = json.loads(s3.get_object(
            Bucket="finmlops", Key=day1.artifacts["predictions-json"])["Body"].read())
        rows = predictions["predictions"]
        assert len(rows) == LIVE_DAYS and predictions["dataset_version"] == dv1
        assert {r["date"] for r in rows} == {d.isoformat() for d in days[TRAIN_DAYS:
                                                                        TRAIN_DAYS + LIVE_DAYS]}
        # Every prediction is experiment traffic in the ledger, served by several replicas,
        # by model versions that lead back to the training's dataset.
        ledger_rows = _sql(ledger_url, "SELECT prediction_id, model_version, server, entity, "
                                       "day, assignment FROM predictions")
        assert {r[0] for r in ledger_rows} == {r["prediction_id"] for r in rows}
        assert len({r[2] for r in ledger_rows}) >= 2
        assert {r[5] for r in ledger_rows} == {"hash"}
        for _, mv, *_ in ledger_rows:
            assert client.get_model_version(model, mv).tags["data_version"] == dv0
        outcomes = _sql(ledger_url, "SELECT COUNT(*) FROM feedback")[0][0]
        assert outcomes == LIVE_DAYS - 2  # next-open fills: known two bars later

        decision = json.loads(day1.node("decide").outputs["change"])
        assert day1.node("decide").outputs["action"] == "promote", decision
        assert decision["pushed"] and len(decision["commits"]) == 2  # state in force, then it
        log = _git("log", "--format=%H %s", "main", cwd=repo).splitlines()
        assert [line.split(" ", 1)[0] for line in log[:2]] == decision["commits"][::-1]
        assert "promote" in log[0] and "record the promotion state in force" in log[1]
        champion_before = client.get_model_version_by_alias(model, "champion").version
        assert champion_before == versions["baseline"]  # nothing moved before the sync

        # -- Argo CD syncs the commit: the PostSync hook applies the record ---------------
        def sync() -> Run:
            text = _git("show", f"main:deploy/k8s/environments/{ENV}/promotion.yaml", cwd=repo)
            cluster.config_maps["finmlops-promotion"] = yaml.safe_load(text)["data"]
            return _check(cluster.run(objs[("Workflow", "finmlops-promotion-sync")],
                                      created=_at(d1)))

        applied = sync()
        assert applied.node("apply").outputs["changed"] == "true"
        assert client.get_model_version_by_alias(model, "champion").version == versions[
            "enhanced"]
        assert client.get_model_version_by_alias(model, "previous-champion").version == \
            versions["baseline"]
        in_force = _sql(ledger_url, "SELECT version, config, source FROM experiment_versions "
                                    "ORDER BY version DESC LIMIT 1")[0]
        weights = {c["name"]: c["weight"] for c in json.loads(in_force[1])["candidates"]}
        assert in_force[2] == "gitops" and weights == {"baseline": 30, "enhanced": 70}
        _until_replicas_serve(pods[1:], in_force[0])
        assert sync().node("apply").outputs["changed"] == "false"  # a second sync: a no-op

        # -- rollback is the revert --------------------------------------------------------
        _git("pull", "--quiet", "origin", "main", cwd=work)
        _git("revert", "--no-edit", decision["commits"][-1], cwd=work)
        _git("push", "--quiet", "origin", "HEAD:main", cwd=work)
        assert sync().node("apply").outputs["changed"] == "true"
        assert client.get_model_version_by_alias(model, "champion").version == versions[
            "baseline"]
        aliases = client.get_registered_model(model).aliases
        assert "previous-champion" not in aliases
        restored = _sql(ledger_url, "SELECT version, config FROM experiment_versions "
                                    "ORDER BY version DESC LIMIT 1")[0]
        weights = {c["name"]: c["weight"] for c in json.loads(restored[1])["candidates"]}
        assert weights == {"baseline": 70, "enhanced": 30}
        _until_replicas_serve(pods[1:], restored[0])
        # (That the next decision does not undo the revert is tests/deploy/test_gitops.py's.)

        # -- a planted shift: the drift alarm gates the decision and retrains -------------
        market.until = d2
        day2 = _check(cluster.run(daily, created=_at(d2), parameters={
            "since": days[TRAIN_DAYS + LIVE_DAYS].isoformat(), "service_url": balancer.url}))
        assert day2.node("drift").outputs["alarm"] == "true"
        assert day2.node("decide").phase == "Skipped"
        (retraining,) = day2.created
        dv2 = day2.node("validate").outputs["dataset_version"]
        assert retraining["spec"]["arguments"]["parameters"] == [
            {"name": "dataset_version", "value": dv2}]
        retrained = _check(cluster.run(retraining, created=_at(d2)))
        assert retrained.outputs["dataset_version"] == dv2
        new = {v: info["version"] for v, info in json.loads(
            retrained.outputs["registered"]).items()}
        assert set(new.values()).isdisjoint(versions.values())
        challenger = client.get_model_version_by_alias(model, "challenger")
        assert challenger.version == max(new.values(), key=int)
        assert challenger.tags["data_version"] == dv2
        assert client.get_model_version_by_alias(model, "champion").version == versions[
            "baseline"]  # retraining makes a challenger; only a decision moves the champion

        # -- a day whose bars never came: validate fails, the exit handler reports it -----
        stale = _check(cluster.run(daily, created=_at(days[-1] + dt.timedelta(days=10)),
                                   parameters={"service_url": balancer.url}), "Failed")
        assert stale.node("validate").exit_code == 3  # a user error: not retried
        assert not stale.ran("predict")
        report = stale.node("report-failure")
        assert report.phase == "Succeeded" and "validate (Failed" in report.stdout
        assert "stale data" in report.stdout
        (metric,) = stale.metrics
        assert metric["name"] == "finmlops_workflow_failures" and metric["labels"] == {
            "template": "finmlops-daily", "workflow_namespace": f"{PREFIX}-pipelines",
            "status": "Failed"}
        assert all(not r.metrics for r in (data, training, day1, day2, retrained))

        # No secret reached a log, a record or the repository.
        texts = [n.stdout + n.stderr for r in (data, training, day1, day2, retrained, stale)
                 for n in r.nodes]
        texts += [p.output() for p in pods]
        texts.append(_git("log", "-p", "main", cwd=repo))
        for sentinel in SENTINELS.values():
            assert not [t for t in texts if sentinel in t], sentinel


def _until_replicas_serve(replicas: list[Pod], version: int, timeout: float = 20.0) -> None:
    """Every replica routes with experiment version ``version`` (each polls the ledger)."""
    deadline = time.monotonic() + timeout
    waiting = {p.name: p for p in replicas}
    headers = {"Authorization": f"Bearer {SENTINELS['admin']}"}
    while waiting and time.monotonic() < deadline:
        for name, pod in list(waiting.items()):
            status = httpx.get(f"{pod.url}/admin/status", headers=headers, timeout=5).json()
            if status.get("experiment", {}).get("version") == version:
                del waiting[name]
        time.sleep(0.25)
    assert not waiting, f"replicas still on an older experiment version: {sorted(waiting)}"
