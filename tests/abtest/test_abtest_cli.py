"""``finmlops abtest replay|status|decide`` on prepared logs, a fake Prometheus, a stub V2
service, and (for --apply) a real MLflow registry and the real service."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings, load_settings
from finmlops.errors import ConfigError


def test_status_prints_arms_comparisons_and_decisions(
        cli: Callable[..., Any], make_log: Callable[..., Path],
        sim_rows: Callable[..., Any]) -> None:
    log = make_log(sim_rows(days=300, seed=1, effect=0.004))
    result, _ = cli("status", "--log", str(log), abtest__min_samples=50)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("baseline", "enhanced", "hit rate [CI]", "always-valid p=", "MDE",
                 "sample ratio", "split decision", "paired decision", "days to a decision"):
        assert text in out, text


def test_status_json_and_decide(cli: Callable[..., Any], make_log: Callable[..., Path],
                                sim_rows: Callable[..., Any]) -> None:
    log = make_log(sim_rows(days=300, seed=1, effect=0.004))
    result, _ = cli("status", "--json", "--log", str(log))
    data = json.loads(result.output)
    assert data["source"] == {"kind": "log", "path": str(log)}
    assert data["arms"]["baseline"]["target_share"] == pytest.approx(0.7)
    assert len(data["timeline"]["paired"]["days"]) == 300
    result, _ = cli("decide", "--json", "--log", str(log))
    decided = json.loads(result.output)
    assert decided["test"] == "paired" and decided["decision"]["action"] == "promote"
    assert "applied" not in decided
    result, _ = cli("decide", "--json", "--test", "split", "--log", str(log))
    assert json.loads(result.output)["test"] == "split"
    result, _ = cli("decide", "--log", str(log))
    assert result.output.startswith("promote (paired test)")


def test_decide_paired_without_shadow_data_is_an_error(
        cli: Callable[..., Any], make_log: Callable[..., Path],
        sim_rows: Callable[..., Any]) -> None:
    log = make_log(sim_rows(days=50, shadow=False))
    result, _ = cli("decide", "--test", "paired", "--log", str(log))
    assert result.exit_code != 0 and "experiment.shadow" in str(result.exception)
    result, _ = cli("decide", "--test", "nope", "--log", str(log))
    assert isinstance(result.exception, ConfigError)


def test_status_from_prometheus(cli: Callable[..., Any], fake_prometheus: Any,
                                prom_vector: Callable[..., Any]) -> None:
    answers = {
        "finmlops_feedback_total": prom_vector([({"arm": "baseline"}, 700),
                                                ({"arm": "enhanced"}, 300)]),
        "finmlops_feedback_hits_total": prom_vector([({"arm": "baseline"}, 360),
                                                     ({"arm": "enhanced"}, 170)]),
        "finmlops_feedback_return_sum": prom_vector([({"arm": "baseline"}, 0.35),
                                                     ({"arm": "enhanced"}, 0.6)]),
        "finmlops_feedback_return_sq_sum": prom_vector([({"arm": "baseline"}, 0.07),
                                                        ({"arm": "enhanced"}, 0.03)]),
    }
    with fake_prometheus(answers) as prom:
        result, _ = cli("status", "--json", "--source", "prometheus", "--prometheus-url",
                        prom.url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"]["kind"] == "prometheus"
    assert data["arms"]["enhanced"]["n"] == 300 and data["timeline"] is None
    assert data["decision"]["action"] in {"promote", "continue", "rollback"}
    result, _ = cli("status", "--source", "prometheus")
    assert isinstance(result.exception, ConfigError)


def test_missing_log_is_one_readable_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    from finmlops.errors import StoreError

    result, _ = cli("status", "--log", str(tmp_path / "none.db"))
    assert isinstance(result.exception, StoreError)
    assert "prediction log not found" in str(result.exception)


@pytest.mark.integration
def test_replay_to_a_running_service_by_url(cli: Callable[..., Any], stub_v2: Any,
                                           tmp_path: Path) -> None:
    from finmlops.data import ingest

    config = {"data__start": "2019-06-01", "data__end": "2020-02-28",
              "train__cutoff": "2019-12-31"}
    _, cfg = cli("--help", **config)
    ingest(load_settings(cfg, environ={}))
    with stub_v2({"baseline": 70, "enhanced": 30}) as stub:
        result, _ = cli("replay", "--json", "--url", stub.url, "--end", "2020-01-31",
                        **config)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["days"] == summary["requests"] == 21  # January 2020 trading days
    assert stub.requests[0]["parameters"]["routing_key"] == "IBB:2020-01-02"
    assert stub.requests[0]["inputs"][0]["shape"] == [1, 20, 21]


def register_two_versions(settings: Settings, tmp_path: Path,
                          tiny_model: Callable[..., Path]) -> dict[str, Path]:
    """baseline (champion) and enhanced (challenger) in a real MLflow registry."""
    import pandas as pd

    from finmlops.config import public_dict
    from finmlops.models import TrainedVariant
    from finmlops.tracking import log_training
    from finmlops.tracking import register as register_version

    dirs = {}
    for arm, w in (("baseline", 50.0), ("enhanced", -50.0)):
        model_dir = tiny_model(tmp_path / "models" / arm, arm, 3, ["ret_1", "vol_5"], w)
        oos = tmp_path / "models" / f"{arm}-oos.parquet"
        pd.DataFrame({"date": pd.date_range("2018-01-02", periods=3), "ticker": "IBB",
                      "probability": [0.4, 0.6, 0.7], "label": [0, 1, 1],
                      "forward_return": [-0.01, 0.02, 0.01], "fold": [0, 0, 1]}
                     ).to_parquet(oos)
        trained = TrainedVariant(
            variant=arm, settings=settings.train.variants[arm], model_dir=model_dir,
            oos_path=oos, fold_metrics=[{"accuracy": 0.5}], metrics={"accuracy": 0.5},
            baselines={}, weights_hash=f"w-{arm}", data_version="d" * 12,
            feature_names=["ret_1", "vol_5"], seconds=1.0)
        run_id = log_training(settings, trained, public_dict(settings))
        register_version(settings, run_id, arm, "d" * 12)
        dirs[arm] = model_dir
    return dirs


@pytest.mark.integration
@pytest.mark.slow
def test_decide_apply_promotes_in_mlflow_and_moves_service_weights(
        cli: Callable[..., Any], make_log: Callable[..., Path], sim_rows: Callable[..., Any],
        tmp_path: Path, tiny_model: Callable[..., Path]) -> None:
    from finmlops.serving import create_app, run_in_thread
    from finmlops.tracking import history, list_models

    log = make_log(sim_rows(days=300, seed=1, effect=0.004))
    _, cfg = cli("--help")
    settings = load_settings(cfg, environ={})
    dirs = register_two_versions(settings, tmp_path, tiny_model)
    handle = run_in_thread(create_app(settings, dirs), "127.0.0.1", 0)
    try:
        result, _ = cli("decide", "--json", "--apply", "--actor", "lead", "--url", handle.url,
                        "--log", str(log))
        assert result.exit_code == 0, result.output
        import httpx

        weights = httpx.get(f"{handle.url}/admin/experiment", trust_env=False).json()
    finally:
        handle.stop()
    out = json.loads(result.output)
    assert out["decision"]["action"] == "promote" and out["applied"]["changed"] is True
    assert {c["name"]: c["weight"] for c in weights["candidates"]} == {"baseline": 30,
                                                                      "enhanced": 70}
    aliases = {a: row["version"] for row in list_models(settings) for a in row["aliases"]}
    assert aliases["champion"] == "2" and aliases["previous-champion"] == "1"
    last = history(settings)[-1]
    assert last["actor"] == "lead" and last["decision"]["test"] == "paired"


def test_bad_dates_are_config_errors(cli: Callable[..., Any]) -> None:
    result, _ = cli("replay", "--url", "http://127.0.0.1:9", "--start", "2020-13-01")
    assert isinstance(result.exception, ConfigError)
    assert "--start must be a date" in str(result.exception)


@pytest.mark.integration
def test_in_process_replay_then_status_reads_that_replays_log(
        cli: Callable[..., Any], tmp_path: Path, tiny_model: Callable[..., Path]) -> None:
    """Without --url the stage runs (service in-process); status then finds its log."""
    from finmlops.data import ingest
    from finmlops.features import feature_names
    from finmlops.pipeline import load_state, save_state

    config = {"data__start": "2019-06-01", "data__end": "2020-03-31",
              "train__cutoff": "2019-12-31", "experiment__shadow": True}
    _, cfg = cli("--help", **config)
    settings = load_settings(cfg, environ={})
    names = feature_names("full", settings.features.context)
    trained = {arm: {"model_dir": str(tiny_model(tmp_path / "m" / arm, arm, 20, names, w))}
               for arm, w in (("baseline", 60.0), ("enhanced", -60.0))}
    save_state(settings, {"dataset_version": ingest(settings).version, "trained": trained})
    result, _ = cli("replay", "--json", **config)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # progress goes to stderr
    assert summary["replay"]["requests"] == 62  # Jan-Mar 2020 trading days
    state = load_state(settings)
    assert state["abtest"]["decision"] == summary["decision"]["action"]
    result, _ = cli("status", "--json", **config)
    status = json.loads(result.output)
    assert status["source"]["path"] == summary["replay"]["log_path"]
    assert status["decision"] == summary["decision"]


@pytest.mark.integration
@pytest.mark.slow
def test_decide_apply_acts_on_the_arms_versions_and_is_idempotent(
        cli: Callable[..., Any], make_log: Callable[..., Path], sim_rows: Callable[..., Any],
        tmp_path: Path, tiny_model: Callable[..., Path]) -> None:
    """A retrained baseline (v3) holds the ``challenger`` alias, yet the experiment's winner
    is the enhanced arm (v2): that is what gets promoted, once, however often it is applied.
    When the promoted arm later loses, the reference's version is champion again."""
    from finmlops.config import public_dict
    from finmlops.models import TrainedVariant
    from finmlops.tracking import history, list_models, log_training, resolve
    from finmlops.tracking import register as register_version

    _, cfg = cli("--help")
    settings = load_settings(cfg, environ={})
    dirs = register_two_versions(settings, tmp_path, tiny_model)
    retrained = TrainedVariant(
        variant="baseline", settings=settings.train.variants["baseline"],
        model_dir=dirs["baseline"], oos_path=tmp_path / "models" / "baseline-oos.parquet",
        fold_metrics=[], metrics={"accuracy": 0.5}, baselines={}, weights_hash="w-retrained",
        data_version="d" * 12, feature_names=["ret_1", "vol_5"], seconds=1.0)
    register_version(settings, log_training(settings, retrained, public_dict(settings)),
                     "baseline", "d" * 12)

    def aliases() -> dict[str, str]:
        return {a: row["version"] for row in list_models(settings) for a in row["aliases"]}

    assert aliases()["challenger"] == "3" and aliases()["champion"] == "1"
    win = make_log(sim_rows(days=300, seed=1, effect=0.004), name="win.db")
    outs = []
    for _ in range(2):
        result, _ = cli("decide", "--json", "--apply", "--actor", "lead", "--log", str(win))
        assert result.exit_code == 0, result.output
        outs.append(json.loads(result.output)["applied"])
    assert outs[0]["changed"] is True and outs[0]["champion"] == "2"
    assert outs[1]["changed"] is False and outs[1]["champion"] == "2"
    assert aliases()["champion"] == "2" and aliases()["previous-champion"] == "1"
    promotions = [e for e in history(settings) if e["action"] == "promote"]
    assert len(promotions) == 1
    assert promotions[0]["decision"]["versions"] == {"enhanced": "2", "baseline": "3"}

    lose = make_log(sim_rows(days=300, seed=1, effect=-0.004), name="lose.db")
    for attempt in range(2):
        result, _ = cli("decide", "--json", "--apply", "--actor", "lead", "--log", str(lose))
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["decision"]["action"] == "rollback"
        assert out["applied"]["changed"] is (attempt == 0)
    assert aliases()["champion"] == "3"  # the baseline arm's version serves again
    assert resolve(settings, "2").tags["rolled_back"] == "true"
    actions = [e["action"] for e in history(settings)]
    assert actions == ["register"] * 3 + ["promote", "promote", "rollback"]
