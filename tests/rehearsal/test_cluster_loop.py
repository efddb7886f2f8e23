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
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
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


DAYS = weekdays(START, TRAIN_DAYS + LIVE_DAYS + SHIFT_DAYS)
D0, D1, D2 = DAYS[TRAIN_DAYS - 1], DAYS[TRAIN_DAYS + LIVE_DAYS - 1], DAYS[-1]
"""The day training ran, the day after the live period, the day after the planted shift."""
LIVE = DAYS[TRAIN_DAYS:TRAIN_DAYS + LIVE_DAYS]


@dataclass(frozen=True)
class Rehearsal:
    """The finished loop, its servers still up: every workflow run, and what the registry, the
    ledger, the repository and the replicas showed at the moment each step finished (what
    later steps change is snapshotted when it held)."""

    pods: list[Pod]
    """MLflow, then the serving replicas."""
    repo: Path
    s3: Any
    client: Any
    """An ``MlflowClient`` of the tracking server."""
    model: str
    data: Run
    training: Run
    day1: Run
    ledger_after_day1: list[tuple[Any, ...]]
    """``(prediction_id, model_version, server, entity, day, assignment)`` of every row."""
    outcomes_after_day1: int
    log_after_day1: list[str]
    """``git log --format="%H %s" main`` of the config repository."""
    champion_before_sync: str
    applied: Run
    champion_after_sync: str
    previous_champion_after_sync: str
    in_force_after_sync: tuple[Any, ...]
    """``(version, config, source)`` of the newest experiment version in the ledger."""
    lagging_after_sync: list[str]
    resynced: Run
    reverted: Run
    champion_after_revert: str
    aliases_after_revert: dict[str, str]
    in_force_after_revert: tuple[Any, ...]
    """``(version, config)`` of the newest experiment version in the ledger."""
    lagging_after_revert: list[str]
    day2: Run
    retrained: Run
    challenger_after_retraining: Any
    champion_after_retraining: str
    stale: Run

    @property
    def versions(self) -> dict[str, str]:
        """variant -> the version the first training registered."""
        registered = json.loads(self.training.outputs["registered"])
        return {v: info["version"] for v, info in registered.items()}

    def s3_json(self, key: str, bucket: str = "finmlops") -> Any:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def needs() -> None:
    from replica_support import nginx_skip_reason

    reason = nginx_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("git") is None:
        pytest.skip("git not installed")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, postgres: Any, needs: None
              ) -> Iterator[Rehearsal]:
    """The whole loop, once for the module (each phase builds on the one before)."""
    from mlflow import MlflowClient
    from replica_support import Replica, start_balancer

    tmp_path = tmp_path_factory.mktemp("rehearsal")
    market = Market(synthetic_bars(DAYS, seed=7, shift_after=D1), until=D0)
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
        client = MlflowClient(tracking_uri=mlflow.url)
        model = settings.registered_model

        def champion() -> str:
            version: str = client.get_model_version_by_alias(model, "champion").version
            return version

        # -- data: ingest and validate; the dataset version is the workflow's output ------
        data = _check(cluster.run(objs[("WorkflowTemplate", "finmlops-data")],
                                  created=_at(D0)))

        # -- training on exactly that version: train, evaluate, register, publish ---------
        training = _check(cluster.run(objs[("WorkflowTemplate", "finmlops-training")],
                                      parameters={"dataset_version":
                                                  data.outputs["dataset_version"]},
                                      created=_at(D0)))

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
        market.until = D1
        daily = objs[("CronWorkflow", "finmlops-daily")]
        day1 = _check(cluster.run(daily, created=_at(D1), parameters={
            "since": LIVE[0].isoformat(), "service_url": balancer.url}))
        ledger_after_day1 = _sql(ledger_url, "SELECT prediction_id, model_version, server, "
                                             "entity, day, assignment FROM predictions")
        outcomes_after_day1 = _sql(ledger_url, "SELECT COUNT(*) FROM feedback")[0][0]
        log_after_day1 = _git("log", "--format=%H %s", "main", cwd=repo).splitlines()
        champion_before_sync = champion()

        # -- Argo CD syncs the commit: the PostSync hook applies the record ---------------
        def sync() -> Run:
            text = _git("show", f"main:deploy/k8s/environments/{ENV}/promotion.yaml", cwd=repo)
            cluster.config_maps["finmlops-promotion"] = yaml.safe_load(text)["data"]
            return _check(cluster.run(objs[("Workflow", "finmlops-promotion-sync")],
                                      created=_at(D1)))

        applied = sync()
        champion_after_sync = champion()
        previous_champion_after_sync = client.get_model_version_by_alias(
            model, "previous-champion").version
        in_force_after_sync = _sql(ledger_url, "SELECT version, config, source FROM "
                                               "experiment_versions ORDER BY version DESC "
                                               "LIMIT 1")[0]
        lagging_after_sync = _until_replicas_serve(pods[1:], in_force_after_sync[0])
        resynced = sync()  # a second sync: a no-op

        # -- rollback is the revert --------------------------------------------------------
        decision = json.loads(day1.node("decide").outputs["change"])
        _git("pull", "--quiet", "origin", "main", cwd=work)
        _git("revert", "--no-edit", decision["commits"][-1], cwd=work)
        _git("push", "--quiet", "origin", "HEAD:main", cwd=work)
        reverted = sync()
        champion_after_revert = champion()
        aliases_after_revert = dict(client.get_registered_model(model).aliases)
        in_force_after_revert = _sql(ledger_url, "SELECT version, config FROM "
                                                 "experiment_versions ORDER BY version DESC "
                                                 "LIMIT 1")[0]
        lagging_after_revert = _until_replicas_serve(pods[1:], in_force_after_revert[0])

        # -- a planted shift: the drift alarm gates the decision and retrains -------------
        market.until = D2
        day2 = _check(cluster.run(daily, created=_at(D2), parameters={
            "since": DAYS[TRAIN_DAYS + LIVE_DAYS].isoformat(), "service_url": balancer.url}))
        (retraining,) = day2.created
        retrained = _check(cluster.run(retraining, created=_at(D2)))
        challenger_after_retraining = client.get_model_version_by_alias(model, "challenger")
        champion_after_retraining = champion()

        # -- a day whose bars never came: validate fails, the exit handler reports it -----
        stale = cluster.run(daily, created=_at(DAYS[-1] + dt.timedelta(days=10)),
                            parameters={"service_url": balancer.url})

        yield Rehearsal(
            pods=pods, repo=repo, s3=s3, client=client, model=model, data=data,
            training=training, day1=day1, ledger_after_day1=ledger_after_day1,
            outcomes_after_day1=outcomes_after_day1, log_after_day1=log_after_day1,
            champion_before_sync=champion_before_sync, applied=applied,
            champion_after_sync=champion_after_sync,
            previous_champion_after_sync=previous_champion_after_sync,
            in_force_after_sync=in_force_after_sync, lagging_after_sync=lagging_after_sync,
            resynced=resynced, reverted=reverted, champion_after_revert=champion_after_revert,
            aliases_after_revert=aliases_after_revert,
            in_force_after_revert=in_force_after_revert,
            lagging_after_revert=lagging_after_revert, day2=day2, retrained=retrained,
            challenger_after_retraining=challenger_after_retraining,
            champion_after_retraining=champion_after_retraining, stale=stale)


def _dv(run: Run) -> str:
    """The dataset version a data or daily run validated."""
    return run.node("validate").outputs["dataset_version"]


def _weights(config: str) -> dict[str, int]:
    return {c["name"]: c["weight"] for c in json.loads(config)["candidates"]}


# -- data ----------------------------------------------------------------------------------

def test_the_data_workflow_validates_the_bars_up_to_its_day(rehearsal: Rehearsal) -> None:
    assert rehearsal.data.node("validate").outputs["newest"] == D0.isoformat()


# -- training --------------------------------------------------------------------------------

def test_training_holds_the_registry_mutex(rehearsal: Rehearsal) -> None:
    assert rehearsal.training.mutexes == ["finmlops-registry"]


def test_training_runs_on_exactly_the_data_workflows_version(rehearsal: Rehearsal) -> None:
    assert rehearsal.training.outputs["dataset_version"] == \
        rehearsal.data.outputs["dataset_version"]


def test_training_registers_both_variants_from_runs_of_their_own(rehearsal: Rehearsal
                                                                 ) -> None:
    assert set(json.loads(rehearsal.training.outputs["registered"])) == {"baseline",
                                                                          "enhanced"}
    run_ids = json.loads(rehearsal.training.outputs["run_ids"])
    assert len(run_ids) == 2 and len(set(run_ids)) == 2


def test_the_evaluation_artifact_names_the_dataset_version(rehearsal: Rehearsal) -> None:
    evaluation = rehearsal.s3_json(rehearsal.training.artifacts["evaluation-json"])
    assert evaluation["dataset_version"] == rehearsal.data.outputs["dataset_version"]


def test_publish_writes_every_registered_version_with_its_marker(rehearsal: Rehearsal
                                                                 ) -> None:
    published = json.loads(rehearsal.training.node("publish").outputs["published"])
    for version, root in published.items():
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        assert rehearsal.s3_json(f"{prefix}/published.json", bucket)["files"], version
    assert set(published) == set(rehearsal.versions.values())


def test_each_training_run_pins_the_dataset_version(rehearsal: Rehearsal) -> None:
    """Lineage in MLflow: the tag and the dataset input."""
    dv0 = rehearsal.data.outputs["dataset_version"]
    for rid in json.loads(rehearsal.training.outputs["run_ids"]):
        run = rehearsal.client.get_run(rid)
        assert run.data.tags["data_version"] == dv0
        assert any(dv0 in (i.dataset.digest, i.dataset.name) or dv0 in i.dataset.source
                   for i in run.inputs.dataset_inputs), run.inputs


def test_each_registered_version_pins_the_dataset_version(rehearsal: Rehearsal) -> None:
    dv0 = rehearsal.data.outputs["dataset_version"]
    for version in rehearsal.versions.values():
        assert rehearsal.client.get_model_version(rehearsal.model, version
                                                  ).tags["data_version"] == dv0


# -- the daily job -----------------------------------------------------------------------

def test_the_daily_job_runs_ingest_to_decide_in_order(rehearsal: Rehearsal) -> None:
    assert [n.name for n in rehearsal.day1.nodes if n.phase == "Succeeded"][:6] == [
        "ingest", "validate", "predict", "feedback", "drift", "decide"]


def test_without_drift_the_daily_job_does_not_retrain(rehearsal: Rehearsal) -> None:
    day1 = rehearsal.day1
    assert day1.node("drift").outputs["alarm"] == "false"
    assert day1.node("retrain").phase == "Skipped" and not day1.created


def test_the_daily_job_validates_a_new_dataset_version(rehearsal: Rehearsal) -> None:
    assert _dv(rehearsal.day1) != rehearsal.data.outputs["dataset_version"]


def test_predict_backfills_every_live_day_on_the_new_version(rehearsal: Rehearsal) -> None:
    predictions = rehearsal.s3_json(rehearsal.day1.artifacts["predictions-json"])
    rows = predictions["predictions"]
    assert len(rows) == LIVE_DAYS and predictions["dataset_version"] == _dv(rehearsal.day1)
    assert {r["date"] for r in rows} == {d.isoformat() for d in LIVE}


def test_every_prediction_is_in_the_ledger(rehearsal: Rehearsal) -> None:
    rows = rehearsal.s3_json(rehearsal.day1.artifacts["predictions-json"])["predictions"]
    assert {r[0] for r in rehearsal.ledger_after_day1} == {r["prediction_id"] for r in rows}


def test_several_replicas_served_the_predictions(rehearsal: Rehearsal) -> None:
    assert len({r[2] for r in rehearsal.ledger_after_day1}) >= 2


def test_the_predictions_are_experiment_traffic(rehearsal: Rehearsal) -> None:
    assert {r[5] for r in rehearsal.ledger_after_day1} == {"hash"}


def test_the_serving_versions_lead_back_to_the_trainings_dataset(rehearsal: Rehearsal
                                                                 ) -> None:
    dv0 = rehearsal.data.outputs["dataset_version"]
    for _, mv, *_ in rehearsal.ledger_after_day1:
        assert rehearsal.client.get_model_version(rehearsal.model, mv
                                                  ).tags["data_version"] == dv0


def test_feedback_records_each_outcome_once_its_exit_bar_exists(rehearsal: Rehearsal
                                                                ) -> None:
    assert rehearsal.outcomes_after_day1 == LIVE_DAYS - 2  # next-open fills: two bars later


def test_the_decision_promotes(rehearsal: Rehearsal) -> None:
    decide = rehearsal.day1.node("decide")
    assert decide.outputs["action"] == "promote", json.loads(decide.outputs["change"])


def test_the_promotion_is_pushed_as_two_commits(rehearsal: Rehearsal) -> None:
    """The promotion state in force, then the promotion."""
    decision = json.loads(rehearsal.day1.node("decide").outputs["change"])
    assert decision["pushed"] and len(decision["commits"]) == 2
    log = rehearsal.log_after_day1
    assert [line.split(" ", 1)[0] for line in log[:2]] == decision["commits"][::-1]
    assert "promote" in log[0] and "record the promotion state in force" in log[1]


def test_nothing_moves_in_the_registry_before_the_sync(rehearsal: Rehearsal) -> None:
    assert rehearsal.champion_before_sync == rehearsal.versions["baseline"]


# -- Argo CD's sync ----------------------------------------------------------------------

def test_the_sync_moves_the_champion_and_keeps_the_previous_one(rehearsal: Rehearsal
                                                                ) -> None:
    assert rehearsal.applied.node("apply").outputs["changed"] == "true"
    assert rehearsal.champion_after_sync == rehearsal.versions["enhanced"]
    assert rehearsal.previous_champion_after_sync == rehearsal.versions["baseline"]


def test_the_sync_puts_the_promoted_weights_in_force(rehearsal: Rehearsal) -> None:
    _, config, source = rehearsal.in_force_after_sync
    assert source == "gitops" and _weights(config) == {"baseline": 30, "enhanced": 70}


def test_every_replica_routes_with_the_promoted_weights(rehearsal: Rehearsal) -> None:
    assert not rehearsal.lagging_after_sync, (
        f"replicas still on an older experiment version: {rehearsal.lagging_after_sync}")


def test_a_second_sync_is_a_no_op(rehearsal: Rehearsal) -> None:
    assert rehearsal.resynced.node("apply").outputs["changed"] == "false"


# -- rollback is the revert --------------------------------------------------------------

def test_reverting_the_commit_restores_the_champion(rehearsal: Rehearsal) -> None:
    assert rehearsal.reverted.node("apply").outputs["changed"] == "true"
    assert rehearsal.champion_after_revert == rehearsal.versions["baseline"]
    assert "previous-champion" not in rehearsal.aliases_after_revert


def test_reverting_the_commit_restores_the_weights(rehearsal: Rehearsal) -> None:
    """(That the next decision does not undo the revert is tests/deploy/test_gitops.py's.)"""
    assert _weights(rehearsal.in_force_after_revert[1]) == {"baseline": 70, "enhanced": 30}


def test_every_replica_routes_with_the_restored_weights(rehearsal: Rehearsal) -> None:
    assert not rehearsal.lagging_after_revert, (
        f"replicas still on an older experiment version: {rehearsal.lagging_after_revert}")


# -- a planted shift -----------------------------------------------------------------------

def test_a_planted_shift_raises_the_drift_alarm_which_gates_the_decision(
        rehearsal: Rehearsal) -> None:
    assert rehearsal.day2.node("drift").outputs["alarm"] == "true"
    assert rehearsal.day2.node("decide").phase == "Skipped"


def test_the_alarm_creates_a_training_on_the_new_dataset_version(rehearsal: Rehearsal
                                                                 ) -> None:
    (retraining,) = rehearsal.day2.created
    assert retraining["spec"]["arguments"]["parameters"] == [
        {"name": "dataset_version", "value": _dv(rehearsal.day2)}]
    assert rehearsal.retrained.outputs["dataset_version"] == _dv(rehearsal.day2)


def test_retraining_registers_new_versions(rehearsal: Rehearsal) -> None:
    new = json.loads(rehearsal.retrained.outputs["registered"])
    assert {info["version"] for info in new.values()}.isdisjoint(rehearsal.versions.values())


def test_retraining_makes_its_newest_version_the_challenger(rehearsal: Rehearsal) -> None:
    new = [info["version"] for info in json.loads(
        rehearsal.retrained.outputs["registered"]).values()]
    challenger = rehearsal.challenger_after_retraining
    assert challenger.version == max(new, key=int)
    assert challenger.tags["data_version"] == _dv(rehearsal.day2)


def test_retraining_leaves_the_champion_to_a_decision(rehearsal: Rehearsal) -> None:
    assert rehearsal.champion_after_retraining == rehearsal.versions["baseline"]


# -- a day whose bars never came -----------------------------------------------------------

def test_a_stale_day_fails_at_validate_as_a_user_error(rehearsal: Rehearsal) -> None:
    stale = _check(rehearsal.stale, "Failed")
    assert stale.node("validate").exit_code == 3  # a user error: not retried
    assert not stale.ran("predict")


def test_the_exit_handler_reports_the_failure(rehearsal: Rehearsal) -> None:
    report = rehearsal.stale.node("report-failure")
    assert report.phase == "Succeeded" and "validate (Failed" in report.stdout
    assert "stale data" in report.stdout


def test_only_the_failed_run_records_a_failure_metric(rehearsal: Rehearsal) -> None:
    r = rehearsal
    (metric,) = r.stale.metrics
    assert metric["name"] == "finmlops_workflow_failures" and metric["labels"] == {
        "template": "finmlops-daily", "workflow_namespace": f"{PREFIX}-pipelines",
        "status": "Failed"}
    assert all(not run.metrics for run in (r.data, r.training, r.day1, r.day2, r.retrained))


# -- secrets -------------------------------------------------------------------------------

def test_no_secret_reaches_a_log_a_record_or_the_repository(rehearsal: Rehearsal) -> None:
    r = rehearsal
    texts = [n.stdout + n.stderr for run in (r.data, r.training, r.day1, r.day2, r.retrained,
                                            r.stale) for n in run.nodes]
    texts += [p.output() for p in r.pods]
    texts.append(_git("log", "-p", "main", cwd=r.repo))
    for sentinel in SENTINELS.values():
        assert not [t for t in texts if sentinel in t], sentinel


def _until_replicas_serve(replicas: list[Pod], version: int, timeout: float = 20.0
                          ) -> list[str]:
    """The replicas not routing with experiment version ``version`` (each polls the ledger)
    once every one does or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    waiting = {p.name: p for p in replicas}
    headers = {"Authorization": f"Bearer {SENTINELS['admin']}"}
    while waiting and time.monotonic() < deadline:
        for name, pod in list(waiting.items()):
            status = httpx.get(f"{pod.url}/admin/status", headers=headers, timeout=5).json()
            if status.get("experiment", {}).get("version") == version:
                del waiting[name]
        time.sleep(0.25)
    return sorted(waiting)
