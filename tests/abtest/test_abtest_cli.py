"""``finmlops abtest replay|status|decide`` on experiment ledgers written through the ledger's
API, a stub V2 service, and (for --apply) a real MLflow registry and the real service."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from abtest_support import Row, cli_in, ledger_maker, simulate_rows

from finmlops.config import Settings, load_settings
from finmlops.errors import ConfigError, StoreError
from finmlops.ledger import open_ledger


def test_status_prints_arms_comparisons_and_decisions(
        cli: Callable[..., Any], make_ledger: Callable[..., str],
        sim_rows: Callable[..., list[Row]]) -> None:
    url = make_ledger(sim_rows(days=300, seed=1, skill=0.5))
    result, _ = cli("status", "--ledger-url", url, abtest__min_samples=50)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("baseline", "enhanced", "hit rate [CI]", "always-valid p=", "MDE",
                 "sample ratio", "split decision", "paired decision", "days to a decision"):
        assert text in out, text


def test_status_json_and_decide(cli: Callable[..., Any], make_ledger: Callable[..., str],
                                sim_rows: Callable[..., list[Row]]) -> None:
    url = make_ledger(sim_rows(days=300, seed=1, skill=0.5))
    result, _ = cli("status", "--json", "--ledger-url", url)
    data = json.loads(result.output)
    assert data["source"] == {"kind": "ledger", "url": url}
    assert data["experiment_version"] == 1
    assert data["arms"]["baseline"]["target_share"] == pytest.approx(0.7)
    assert len(data["timeline"]["paired"]["days"]) == 300
    result, _ = cli("decide", "--json", "--ledger-url", url)
    decided = json.loads(result.output)
    assert decided["test"] == "paired" and decided["decision"]["action"] == "promote"
    assert "applied" not in decided
    result, _ = cli("decide", "--json", "--test", "split", "--ledger-url", url)
    assert json.loads(result.output)["test"] == "split"
    result, _ = cli("decide", "--ledger-url", url)
    assert result.output.startswith("promote (paired test)")


def test_decide_paired_without_shadow_data_is_an_error(
        cli: Callable[..., Any], make_ledger: Callable[..., str],
        sim_rows: Callable[..., list[Row]]) -> None:
    url = make_ledger(sim_rows(days=50, shadow=False))
    result, _ = cli("decide", "--test", "paired", "--ledger-url", url)
    assert result.exit_code != 0 and "experiment.shadow" in str(result.exception)
    result, _ = cli("decide", "--test", "nope", "--ledger-url", url)
    assert isinstance(result.exception, ConfigError)


def test_status_on_an_empty_home_says_what_to_run(
        cli: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finmlops.cli import main

    _, cfg = cli("--help")
    assert main(["--config", str(cfg), "abtest", "status"]) == StoreError.exit_code
    err = capsys.readouterr().err
    ledger = (tmp_path / "home" / "ledger.db").resolve()
    assert err == (f"error: no experiment ledger at {ledger}: run `finmlops run` (or "
                   "`finmlops serve`) first\n")
    assert not ledger.exists()  # a reader creates nothing
    for args in (["decide"], ["status", "--ledger-url", f"sqlite:///{tmp_path / 'none.db'}"]):
        result, _ = cli(*args)
        assert isinstance(result.exception, StoreError)
        assert str(result.exception).startswith("no experiment ledger at ")


@pytest.mark.integration
def test_replay_to_a_running_service_by_url(cli: Callable[..., Any], stub_v2: Any) -> None:
    """Requests carry the inference token, feedback the feedback token and the prediction
    ids the answers carried (never the client's ids)."""
    from finmlops.data import ingest

    config = {"data__start": "2019-06-01", "data__end": "2020-02-28",
              "train__cutoff": "2019-12-31", "serve__tokens__inference": "i-tok",
              "serve__tokens__feedback": "f-tok"}
    _, cfg = cli("--help", **config)
    ingest(load_settings(cfg, environ={}))
    with stub_v2({"baseline": 70, "enhanced": 30},
                 tokens={"infer": "i-tok", "feedback": "f-tok"}) as stub:
        result, _ = cli("replay", "--json", "--url", stub.url, "--end", "2020-01-31",
                        **config)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["days"] == summary["requests"] == 21  # January 2020 trading days
    assert summary["feedback"] == 21 and sum(summary["served"].values()) == 21
    assert stub.requests[0]["parameters"]["routing_key"] == "IBB:2020-01-02"
    assert stub.requests[0]["inputs"][0]["shape"] == [1, 20, 21]
    posted = [o for batch in stub.feedback for o in batch["outcomes"]]
    assert [stub.issued[o["prediction_id"]] for o in posted] == [
        r["parameters"]["routing_key"] for r in stub.requests]
    assert all(set(o) == {"prediction_id", "realized_return", "direction"} for o in posted)
    assert {(path.split("/")[-1], auth) for path, auth in stub.auth} == {
        ("infer", "Bearer i-tok"), ("feedback", "Bearer f-tok")}
    assert set(stub.seldon_models) == {None}
    with stub_v2({"baseline": 70, "enhanced": 30},
                 tokens={"infer": "i-tok", "feedback": "f-tok"}) as seldon:
        result, _ = cli("replay", "--json", "--url", seldon.url, "--end", "2020-01-07",
                        "--seldon", **config)
    assert result.exit_code == 0, result.output
    # a Seldon Core v2 mesh routes by this header to the experiment of that name
    assert set(seldon.seldon_models) == {"direction-ab.experiment"}


@pytest.mark.integration
def test_replay_per_row_to_the_real_service(cli: Callable[..., Any], tmp_path: Path,
                                            tiny_model: Callable[..., Path]) -> None:
    """``--per-row``: each day's tickers in one request, one routing key per row (the bundled
    data has one target; the real-service replay test runs several); the ledger holds one
    prediction per ticker and day under its key, each joined to its outcome."""
    from finmlops.abtest import configured_signature
    from finmlops.data import ingest
    from finmlops.serving import create_app, run_in_thread

    config = {"data__start": "2019-06-01", "data__end": "2020-02-28",
              "train__cutoff": "2019-12-31"}
    _, cfg = cli("--help", **config)
    settings = load_settings(cfg, environ={})
    ingest(settings)
    window, names = configured_signature(settings)
    dirs = {arm: tiny_model(tmp_path / "m" / arm, arm, window, names, w)
            for arm, w in (("baseline", 1.0), ("enhanced", -1.0))}
    handle = run_in_thread(create_app(settings, dirs), "127.0.0.1", 0)
    try:
        result, _ = cli("replay", "--json", "--per-row", "--url", handle.url,
                        "--end", "2020-01-31", **config)
    finally:
        handle.stop()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["days"], summary["requests"], summary["feedback"]) == (21, 21, 21)
    ledger = open_ledger(settings.ledger_url, create=False)
    try:
        rows = ledger.predictions("direction-ab")
        joined = {f["prediction_id"] for f in ledger.feedback()}
    finally:
        ledger.close()
    assert len({r["routing_key"] for r in rows}) == len(rows) == 21
    assert [r["routing_key"] for r in rows][:2] == ["IBB:2020-01-02", "IBB:2020-01-03"]
    assert {r["client_id"].split(":", 1)[1] for r in rows} == {
        f"{r['day']}:0" for r in rows}  # one request a day
    assert joined == {r["prediction_id"] for r in rows}


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


def weights_of(ledger_url: str) -> list[tuple[int, str, str, dict[str, float]]]:
    """``(version, source, actor, weights)`` of every experiment version in the ledger."""
    ledger = open_ledger(ledger_url, create=False)
    try:
        return [(v.version, v.source, v.actor, v.weights)
                for v in ledger.experiment_versions("direction-ab")]
    finally:
        ledger.close()


@pytest.mark.integration
@pytest.mark.slow
def test_decide_apply_promotes_in_mlflow_and_the_running_service_takes_the_weights(
        cli: Callable[..., Any], make_ledger: Callable[..., str],
        sim_rows: Callable[..., list[Row]], tmp_path: Path,
        tiny_model: Callable[..., Path]) -> None:
    """--apply publishes the new weights as an experiment version in the ledger; a service
    on that ledger routes by them within a poll, with no call to the service."""
    import httpx

    from finmlops.serving import create_app, run_in_thread
    from finmlops.tracking import history, list_models

    url = make_ledger(sim_rows(days=300, seed=1, skill=0.5))
    config = {"ledger__url": url, "ledger__poll_interval_s": 0.1}
    _, cfg = cli("--help", **config)
    settings = load_settings(cfg, environ={})
    dirs = register_two_versions(settings, tmp_path, tiny_model)
    handle = run_in_thread(create_app(settings, dirs), "127.0.0.1", 0)
    try:
        def weights() -> dict[str, int]:
            body = httpx.get(f"{handle.url}/admin/experiment", trust_env=False).json()
            return {c["name"]: c["weight"] for c in body["candidates"]}

        assert weights() == {"baseline": 70, "enhanced": 30}
        result, _ = cli("decide", "--json", "--apply", "--actor", "lead", **config)
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 15
        while weights() != {"baseline": 30, "enhanced": 70}:
            assert time.monotonic() < deadline, f"the service still routes by {weights()}"
            time.sleep(0.05)
    finally:
        handle.stop()
    out = json.loads(result.output)
    assert out["decision"]["action"] == "promote" and out["applied"]["changed"] is True
    published = out["applied"]["experiment"]
    assert (published["version"], published["source"], published["published"]) == (
        2, "decide", True)
    assert published["reason"].startswith("promote: paired: enhanced beats baseline")
    assert weights_of(url) == [(1, "config", "finmlops.yaml", {"baseline": 70, "enhanced": 30}),
                               (2, "decide", "lead", {"baseline": 30, "enhanced": 70})]
    aliases = {a: row["version"] for row in list_models(settings) for a in row["aliases"]}
    assert aliases["champion"] == "2" and aliases["previous-champion"] == "1"
    last = history(settings)[-1]
    assert last["actor"] == "lead" and last["decision"]["test"] == "paired"


def test_bad_dates_are_config_errors(cli: Callable[..., Any]) -> None:
    result, _ = cli("replay", "--url", "http://127.0.0.1:9", "--start", "2020-13-01")
    assert isinstance(result.exception, ConfigError)
    assert "--start must be a date" in str(result.exception)


@pytest.mark.integration
def test_in_process_replay_then_status_reads_that_replays_ledger(
        cli: Callable[..., Any], tmp_path: Path, tiny_model: Callable[..., Path],
        registered_arms: Callable[..., dict[str, Any]]) -> None:
    """Without --url the stage runs (service in-process, a ledger of its own); status then
    finds that ledger through the run state."""
    from finmlops.data import ingest
    from finmlops.features import feature_names
    from finmlops.pipeline import load_state, save_state

    config = {"data__start": "2019-06-01", "data__end": "2020-03-31",
              "train__cutoff": "2019-12-31", "experiment__shadow": True}
    _, cfg = cli("--help", **config)
    settings = load_settings(cfg, environ={})
    names = feature_names("full", settings.features.context)
    dirs = {arm: tiny_model(tmp_path / "m" / arm, arm, 20, names, w)
            for arm, w in (("baseline", 60.0), ("enhanced", -60.0))}
    save_state(settings, {"dataset_version": ingest(settings).version,
                          **registered_arms(settings, dirs)})
    result, _ = cli("replay", "--json", **config)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # progress goes to stderr
    assert summary["replay"]["requests"] == 62  # Jan-Mar 2020 trading days
    state = load_state(settings)
    assert state["abtest"]["decision"] == summary["decision"]["action"]
    result, _ = cli("status", "--json", **config)
    status = json.loads(result.output)
    assert status["source"] == {"kind": "ledger", "url": summary["replay"]["ledger"]}
    assert Path(summary["replay"]["ledger"].removeprefix("sqlite:///")).parent == Path(
        state["abtest"]["path"]).parent
    assert status["decision"] == summary["decision"]
    assert status["arms"] == summary["arms"]


@dataclass(frozen=True)
class AppliedDecisions:
    """A retrained baseline (v3) holds the ``challenger`` alias, yet the experiment's winner
    is the enhanced arm (v2): ``decide --apply`` on a ledger it wins, twice, then on one it
    loses, twice — with what the registry and the ledgers held after each pair."""

    settings: Settings
    aliases_before: dict[str, str]
    promoting: list[Any]
    """The CliRunner results of the two applies on the winning ledger."""
    promoted_weights: list[dict[str, float]]
    aliases_promoted: dict[str, str]
    history_promoted: list[dict[str, Any]]
    rolling_back: list[Any]
    """The CliRunner results of the two applies on the losing ledger."""
    rolled_back_weights: list[dict[str, float]]
    aliases_rolled_back: dict[str, str]
    rolled_back_tags: dict[str, str]
    history_rolled_back: list[dict[str, Any]]

    @property
    def promotions(self) -> list[dict[str, Any]]:
        return [json.loads(r.output)["applied"] for r in self.promoting]

    @property
    def rollbacks(self) -> list[dict[str, Any]]:
        return [json.loads(r.output) for r in self.rolling_back]


def apply_twice(cli: Callable[..., Any], ledger_url: str) -> list[Any]:
    return [cli("decide", "--json", "--apply", "--actor", "lead", "--ledger-url", ledger_url)[0]
            for _ in range(2)]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory,
            tiny_model: Callable[..., Path]) -> AppliedDecisions:
    from finmlops.config import public_dict
    from finmlops.models import TrainedVariant
    from finmlops.tracking import history, list_models, log_training, resolve
    from finmlops.tracking import register as register_version

    root = tmp_path_factory.mktemp("applied")
    with pytest.MonkeyPatch.context() as mp:
        cli = cli_in(root, mp)
        make_ledger = ledger_maker(root, Settings(home=root))
        _, cfg = cli("--help")
        settings = load_settings(cfg, environ={})
        dirs = register_two_versions(settings, root, tiny_model)
        retrained = TrainedVariant(
            variant="baseline", settings=settings.train.variants["baseline"],
            model_dir=dirs["baseline"], oos_path=root / "models" / "baseline-oos.parquet",
            fold_metrics=[], metrics={"accuracy": 0.5}, baselines={},
            weights_hash="w-retrained", data_version="d" * 12,
            feature_names=["ret_1", "vol_5"], seconds=1.0)
        register_version(settings, log_training(settings, retrained, public_dict(settings)),
                         "baseline", "d" * 12)

        def aliases() -> dict[str, str]:
            return {a: row["version"] for row in list_models(settings) for a in row["aliases"]}

        aliases_before = aliases()
        win = make_ledger(simulate_rows(days=300, seed=1, skill=0.5), name="win.db")
        promoting = apply_twice(cli, win)
        promoted = (weights_of(win), aliases(), history(settings))
        lose = make_ledger(simulate_rows(days=300, seed=1, skill=-0.5), name="lose.db")
        rolling_back = apply_twice(cli, lose)
        return AppliedDecisions(
            settings, aliases_before, promoting, [w for *_, w in promoted[0]], promoted[1],
            promoted[2], rolling_back, [w for *_, w in weights_of(lose)], aliases(),
            dict(resolve(settings, "2").tags), history(settings))


@pytest.mark.integration
@pytest.mark.slow
def test_the_retrained_baseline_is_challenger_beside_the_first_champion(
        applied: AppliedDecisions) -> None:
    assert applied.aliases_before["challenger"] == "3" and applied.aliases_before[
        "champion"] == "1"


@pytest.mark.integration
@pytest.mark.slow
def test_every_apply_on_the_winning_ledger_succeeds(applied: AppliedDecisions) -> None:
    for result in applied.promoting:
        assert result.exit_code == 0, result.output


@pytest.mark.integration
@pytest.mark.slow
def test_every_apply_on_the_losing_ledger_succeeds(applied: AppliedDecisions) -> None:
    for result in applied.rolling_back:
        assert result.exit_code == 0, result.output


@pytest.mark.integration
@pytest.mark.slow
def test_the_first_apply_promotes_the_winning_arms_version(applied: AppliedDecisions) -> None:
    first = applied.promotions[0]
    assert first["changed"] is True and first["champion"] == "2"


@pytest.mark.integration
@pytest.mark.slow
def test_applying_the_promotion_again_changes_nothing(applied: AppliedDecisions) -> None:
    second = applied.promotions[1]
    assert second["changed"] is False and second["champion"] == "2"


@pytest.mark.integration
@pytest.mark.slow
def test_only_the_first_promotion_publishes_an_experiment_version(
        applied: AppliedDecisions) -> None:
    assert [o["experiment"]["published"] for o in applied.promotions] == [True, False]


@pytest.mark.integration
@pytest.mark.slow
def test_the_repeated_promotion_reports_the_version_in_force(
        applied: AppliedDecisions) -> None:
    assert applied.promotions[1]["experiment"]["version"] == 2


@pytest.mark.integration
@pytest.mark.slow
def test_the_promotion_swaps_the_arms_weights_once(applied: AppliedDecisions) -> None:
    """A second swap of weights would hand the traffic back."""
    assert applied.promoted_weights == [{"baseline": 70, "enhanced": 30},
                                        {"baseline": 30, "enhanced": 70}]


@pytest.mark.integration
@pytest.mark.slow
def test_the_promoted_version_is_champion_and_the_old_one_previous_champion(
        applied: AppliedDecisions) -> None:
    assert applied.aliases_promoted["champion"] == "2"
    assert applied.aliases_promoted["previous-champion"] == "1"


@pytest.mark.integration
@pytest.mark.slow
def test_the_promotion_is_in_the_history_once(applied: AppliedDecisions) -> None:
    promotions = [e for e in applied.history_promoted if e["action"] == "promote"]
    assert len(promotions) == 1


@pytest.mark.integration
@pytest.mark.slow
def test_the_recorded_promotion_names_each_arms_version(applied: AppliedDecisions) -> None:
    (promotion,) = [e for e in applied.history_promoted if e["action"] == "promote"]
    assert promotion["decision"]["versions"] == {"enhanced": "2", "baseline": "3"}


@pytest.mark.integration
@pytest.mark.slow
def test_a_promoted_arm_that_loses_is_rolled_back_at_every_apply(
        applied: AppliedDecisions) -> None:
    for out in applied.rollbacks:
        assert out["decision"]["action"] == "rollback"


@pytest.mark.integration
@pytest.mark.slow
def test_only_the_first_rollback_changes_the_registry(applied: AppliedDecisions) -> None:
    for attempt, out in enumerate(applied.rollbacks):
        assert out["applied"]["changed"] is (attempt == 0)


@pytest.mark.integration
@pytest.mark.slow
def test_only_the_first_rollback_publishes_an_experiment_version(
        applied: AppliedDecisions) -> None:
    for attempt, out in enumerate(applied.rollbacks):
        assert out["applied"]["experiment"]["published"] is (attempt == 0)


@pytest.mark.integration
@pytest.mark.slow
def test_the_rollback_gives_the_loser_no_traffic_once(applied: AppliedDecisions) -> None:
    assert applied.rolled_back_weights == [{"baseline": 70, "enhanced": 30},
                                           {"baseline": 100, "enhanced": 0}]


@pytest.mark.integration
@pytest.mark.slow
def test_the_rollback_makes_the_reference_arms_version_champion_again(
        applied: AppliedDecisions) -> None:
    assert applied.aliases_rolled_back["champion"] == "3"


@pytest.mark.integration
@pytest.mark.slow
def test_the_rolled_back_version_is_tagged(applied: AppliedDecisions) -> None:
    assert applied.rolled_back_tags["rolled_back"] == "true"


@pytest.mark.integration
@pytest.mark.slow
def test_the_history_holds_each_registration_promotion_and_rollback_once(
        applied: AppliedDecisions) -> None:
    actions = [e["action"] for e in applied.history_rolled_back]
    assert actions == ["register"] * 3 + ["promote", "promote", "rollback"]

