"""Settings: defaults < YAML < environment < overrides; mistakes are ConfigErrors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finmlops.config import load_settings, public_dict
from finmlops.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_describe_the_reference_workload() -> None:
    s = load_settings(environ={})
    assert s.data.tickers == ["IBB", "SPY"]
    assert s.features.target == ["IBB"] and s.features.context == ["SPY"]
    assert {c.name: c.weight for c in s.experiment.candidates} == {"baseline": 70, "enhanced": 30}
    assert set(s.train.variants) == {"baseline", "enhanced"}


def test_every_embedded_default_lives_under_home(tmp_path: Path) -> None:
    a = load_settings(environ={"FINMLOPS_HOME": str(tmp_path / "a")})
    b = load_settings(environ={"FINMLOPS_HOME": str(tmp_path / "b")})
    for s, home in ((a, tmp_path / "a"), (b, tmp_path / "b")):
        for p in (s.store_uri, s.ledger_url.removeprefix("sqlite:///"), str(s.reports_dir),
                  str(s.runs_dir), s.tracking_uri.removeprefix("sqlite:///")):
            assert Path(p).is_relative_to(home), p
    assert a.tracking_uri != b.tracking_uri


def test_yaml_then_environment_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text("train:\n  seed: 1\n  embargo_days: 3\nserve:\n  port: 9000\n")
    s = load_settings(cfg, environ={"FINMLOPS_TRAIN__SEED": "2"},
                      overrides={"serve.port": 9100})
    assert s.train.seed == 2  # env beats file
    assert s.train.embargo_days == 3  # file beats default
    assert s.serve.port == 9100  # override beats all


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text("abtest:\n  alpha: 0.01\n")
    assert load_settings(environ={"FINMLOPS_CONFIG": str(cfg)}).abtest.alpha == 0.01


def test_lists_from_environment_are_comma_separated() -> None:
    s = load_settings(environ={"FINMLOPS_DATA__TICKERS": "ibb, spy,qqq"})
    assert s.data.tickers == ["IBB", "SPY", "QQQ"]


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("data:\n  tickrs: [IBB]\n", "data.tickrs: unknown key"),
        ("trian: {}\n", "trian: unknown key"),
        ("train:\n  seed: abc\n", "train.seed"),
        ("serve:\n  port: 70000\n", "serve.port"),
        ("evaluation:\n  stress_windows:\n    x: {start: 2020-03-01, end: 2020-01-01}\n",
         "evaluation.stress_windows.x"),
        ("experiment:\n  default: nope\n", "experiment"),
        ("features:\n  target: [XBI]\n", "data.tickers"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert key in str(err.value)
    assert str(cfg) in str(err.value)


@pytest.mark.parametrize(("name", "key"), [
    ("FINMLOPS_DATA__TICKRS", "data.tickrs"),
    ("FINMLOPS_TRIAN__SEED", "trian.seed"),
    ("FINMLOPS_TRAIN_SEED", "train_seed"),
])
def test_unknown_environment_key_names_the_variable_and_the_key(name: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={name: "1"})
    assert str(err.value) == f"{name} ({key}): unknown key"


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("train: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(cfg, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml", environ={})


def test_secrets_are_masked_in_public_dict() -> None:
    env = {"FINMLOPS_INFERENCE_TOKEN": "s3cr3t-inference", "FINMLOPS_FEEDBACK_TOKEN":
           "s3cr3t-feedback", "FINMLOPS_SERVE__TOKENS__ADMIN": "s3cr3t-admin",
           "FINMLOPS_LEDGER_URL": "postgresql://u:s3cr3t-pw@db:5432/ledger"}
    s = load_settings(environ=env)
    tokens = s.serve.tokens
    assert tokens.inference is not None and tokens.feedback is not None
    assert tokens.admin is not None
    assert (tokens.inference.get_secret_value(), tokens.feedback.get_secret_value(),
            tokens.admin.get_secret_value()) == ("s3cr3t-inference", "s3cr3t-feedback",
                                                 "s3cr3t-admin")
    assert s.ledger_url == "postgresql://u:s3cr3t-pw@db:5432/ledger"
    for shown in (repr(s), str(public_dict(s))):
        assert "s3cr3t" not in shown


def test_example_config_is_valid_and_documents_defaults() -> None:
    example = REPO / "finmlops.example.yaml"
    s = load_settings(example, environ={})
    assert s == load_settings(environ={}), "the example should restate the defaults"


@given(weights=st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=2))
def test_experiment_weights_must_not_all_be_zero(weights: list[int]) -> None:
    over = {"experiment.candidates": [{"name": "baseline", "weight": weights[0]},
                                      {"name": "enhanced", "weight": weights[1]}]}
    if sum(weights) == 0:
        with pytest.raises(ConfigError, match="weights"):
            load_settings(environ={}, overrides=over)
    else:
        s = load_settings(environ={}, overrides=over)
        assert [c.weight for c in s.experiment.candidates] == weights


def test_config_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize(("raw", "message"), [
    (b"\xff\xfe\x00data: {}\n", "not UTF-8"),
    (b"1: 2\n", "1: unknown key"),
    (b"? [a, b]\n: 1\n", "not valid YAML"),
])
def test_unreadable_yaml_is_a_config_error(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "finmlops.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_data_end_before_start_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"data: .*end 2020-01-01 is before start 2020-01-10"):
        load_settings(environ={"FINMLOPS_DATA__START": "2020-01-10",
                               "FINMLOPS_DATA__END": "2020-01-01"})
    same_day = load_settings(environ={"FINMLOPS_DATA__START": "2020-01-10",
                                      "FINMLOPS_DATA__END": "2020-01-10"})
    assert same_day.data.end == same_day.data.start


def test_an_empty_home_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^FINMLOPS_HOME: must not be empty"):
        load_settings(environ={"FINMLOPS_HOME": ""})


# ---- values decoded by their field's type (pydantic-settings' environment source) ----------

def test_a_schedule_with_commas_stays_one_string() -> None:
    s = load_settings(environ={"FINMLOPS_DEPLOY__SCHEDULE": "0 9,16 * * 1-5"})
    assert s.deploy.schedule == "0 9,16 * * 1-5"


@pytest.mark.parametrize("name", ["FINMLOPS_INFERENCE_TOKEN",
                                  "FINMLOPS_SERVE__TOKENS__INFERENCE"])
def test_a_token_with_commas_stays_one_secret(name: str) -> None:
    s = load_settings(environ={name: "tok,en,with,commas"})
    token = s.serve.tokens.inference
    assert token is not None and token.get_secret_value() == "tok,en,with,commas"


def test_a_ledger_url_with_a_comma_in_its_password_stays_one_secret() -> None:
    s = load_settings(environ={"FINMLOPS_LEDGER_URL": "postgresql://u:p,w@db:5432/ledger"})
    assert s.ledger_url == "postgresql://u:p,w@db:5432/ledger"


def test_the_long_token_variable_beats_its_alias() -> None:
    s = load_settings(environ={"FINMLOPS_INFERENCE_TOKEN": "short",
                               "FINMLOPS_SERVE__TOKENS__INFERENCE": "long"})
    token = s.serve.tokens.inference
    assert token is not None and token.get_secret_value() == "long"


@given(parts=st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00",
                                                     blacklist_categories=("Cs",)),
                              min_size=1, max_size=8), min_size=1, max_size=4))
def test_any_string_setting_round_trips_through_the_environment(parts: list[str]) -> None:
    """Commas, quotes, brackets, spaces: a string field gets exactly the variable's value."""
    value = ",".join(parts)
    s = load_settings(environ={"FINMLOPS_DEPLOY__TIMEZONE": value})
    assert s.deploy.timezone == value


def test_lists_take_json_too() -> None:
    s = load_settings(environ={"FINMLOPS_DATA__TICKERS": '["ibb", "xbi"]',
                               "FINMLOPS_FEATURES__CONTEXT": '["XBI"]',
                               "FINMLOPS_EVALUATION__COST_SWEEP_BPS": "0, 2.5,10"})
    assert s.data.tickers == ["IBB", "XBI"]
    assert s.evaluation.cost_sweep_bps == [0.0, 2.5, 10.0]


def test_a_list_of_objects_needs_json_and_says_so() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"FINMLOPS_EXPERIMENT__CANDIDATES": "baseline,enhanced"})
    assert str(err.value) == ("FINMLOPS_EXPERIMENT__CANDIDATES: not valid JSON "
                              "(this key takes a JSON value)")


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"FINMLOPS_DATA__SOURCE": "yahooo"})
    assert str(err.value) == ("FINMLOPS_DATA__SOURCE (data.source): 'yahooo' is not one of "
                              "bundled, yahoo, stooq, csv")


def test_an_environment_error_does_not_blame_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text("serve:\n  port: 9000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={"FINMLOPS_SERVE__PORT": "x"})
    assert str(err.value).startswith("FINMLOPS_SERVE__PORT (serve.port): ")
    assert str(cfg) not in str(err.value)


def test_a_flag_error_names_the_flag_only() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, overrides={"data.source": "yahooo"},
                      override_names={"data.source": "--source"})
    assert str(err.value) == "--source: 'yahooo' is not one of bundled, yahoo, stooq, csv"


def test_an_override_without_a_flag_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, overrides={"serve.port": 70000})
    assert str(err.value) == ("invalid configuration: serve.port: Input should be less than "
                              "or equal to 65535")


def test_the_experiment_names_its_arms_once() -> None:
    """The arms served, the reference and the weights come from the experiment section alone:
    candidates in order, then the mirror unless it is a candidate too."""
    from finmlops.config import ExperimentSettings

    exp = ExperimentSettings(default="b", candidates=[{"name": "a", "weight": 20},
                                                      {"name": "b", "weight": 80}],
                             mirror={"name": "c", "percent": 10})
    assert (exp.candidate_names, exp.arms, exp.reference) == (["a", "b"], ["a", "b", "c"], "b")
    assert exp.weights == {"a": 20, "b": 80}
    mirrored = ExperimentSettings.model_validate(
        {**exp.model_dump(), "default": None, "mirror": {"name": "a"}})
    assert (mirrored.arms, mirrored.reference) == (["a", "b"], "a")
