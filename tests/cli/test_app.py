"""The command line: fast start, one readable line for a user's mistake, JSON where asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer

from finmlops.cli import main

REPO = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "mlflow", "onnxruntime", "onnx", "pandas", "pyarrow", "plotly", "hera",
         "s3fs", "scipy", "sklearn", "uvicorn", "pydantic", "yaml", "httpx")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from finmlops.cli import main\n"
        "rc = main(['--help'])\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy)); sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "Usage" in out.stdout
    assert "HEAVY=\n" in out.stdout, out.stdout.splitlines()[-1]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    import typer.main

    from finmlops.cli import app

    group = typer.main.get_command(app)
    names = list(group.commands)  # type: ignore[attr-defined]
    assert "run" in names
    for name in names:
        assert main([name, "--help"]) == 0, name
    assert "Usage" in capsys.readouterr().out


def test_config_error_is_one_line_and_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  sed: 1\n")
    assert main(["--config", str(bad), "run", "--until", "ingest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.sed: unknown key" in err
    assert "Traceback" not in err


def test_unknown_stage_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    assert main(["run", "--until", "nope"]) != 0
    assert "unknown stage 'nope'" in capsys.readouterr().err


def test_stages_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--json"]) == 0
    stages = json.loads(capsys.readouterr().out)
    assert stages[0]["name"] == "ingest"


def test_usage_errors_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--no-such-flag"]) == 2
    assert "No such option" in capsys.readouterr().err
    assert main([]) in (0, 2)  # no arguments shows help
    shown = capsys.readouterr()
    assert "Usage" in shown.out + shown.err


def test_ctrl_c_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    import signal

    import finmlops.pipeline

    def interrupted(*args: object, **kwargs: object) -> None:
        signal.raise_signal(signal.SIGINT)  # what Ctrl-C delivers, mid-stage

    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    monkeypatch.setattr(finmlops.pipeline, "run_stages", interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["run", "--until", "ingest"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted"), err


def test_an_os_error_is_one_line(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import finmlops.pipeline

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "state.json"))

    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    monkeypatch.setattr(finmlops.pipeline, "run_stages", refused)
    assert main(["run", "--until", "ingest"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: Permission denied: {tmp_path / 'state.json'}\n"


def test_ingest_with_end_before_start_changes_nothing(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FINMLOPS_HOME", str(home))
    assert main(["ingest", "--start", "2020-01-10", "--end", "2020-01-01"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("error: invalid configuration: data: end 2020-01-01 is before "
                            "start 2020-01-10\n")
    assert captured.out == ""
    assert not home.exists()


def test_a_failed_ingest_prints_one_line_and_nothing_on_stdout(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    assert main(["ingest", "--tickers", "NOPE"]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""  # no stray blank line from a progress display off a terminal
    assert captured.err.count("\n") == 1 and "not bundled: NOPE" in captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import finmlops

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"finmlops {finmlops.__version__}\n"


def test_version_is_declared_once() -> None:
    """pyproject.toml takes the version from the package, so `--version` cannot drift."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "finmlops.__version__"}


@pytest.mark.parametrize(("argv", "line"), [
    (["ingest", "--source", "yahooo"],
     "error: --source: 'yahooo' is not one of bundled, yahoo, stooq, csv\n"),
    (["serve", "--port", "70000"],
     "error: --port: Input should be less than or equal to 65535\n"),
    (["monitor", "drift", "--bins", "1"],
     "error: --bins: Input should be greater than or equal to 2\n"),
])
def test_a_bad_flag_value_names_the_flag(argv: list[str], line: str,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path / "home"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == line
    assert not (tmp_path / "home").exists()


def test_a_bad_environment_value_names_the_variable(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMLOPS_DATA__SOURCE", "yahooo")
    assert main(["ingest"]) == 2
    assert capsys.readouterr().err == ("error: FINMLOPS_DATA__SOURCE (data.source): 'yahooo' "
                                       "is not one of bundled, yahoo, stooq, csv\n")


def test_a_flag_is_found_by_its_value_when_its_name_differs(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An option whose name is not the key's last part (``--first-day`` for
    ``abtest.replay_start``) is still the one an error names."""
    from finmlops.cli._common import settings_from
    from finmlops.errors import ConfigError

    demo = typer.Typer()

    @demo.command()
    def replay(ctx: typer.Context,
               first_day: Annotated[str, typer.Option("--first-day")],
               port: Annotated[int, typer.Option("--port")] = 8080) -> None:
        settings_from(ctx, {"abtest.replay_start": first_day, "serve.port": port})

    @demo.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    with pytest.raises(ConfigError) as err:
        demo(["replay", "--first-day", "someday", "--port", "1"], standalone_mode=False)
    assert str(err.value).startswith("--first-day: Input should be a valid date")


def test_a_command_without_its_extra_says_what_to_install(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """E.g. `finmlops train` in the serving image (finmlops[serve], no torch)."""
    import finmlops.pipeline

    def no_torch(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    monkeypatch.setattr(finmlops.pipeline, "run_stages", no_torch)
    assert main(["run", "--until", "train"]) == 1
    assert capsys.readouterr().err == (
        "error: this command needs the Python module 'torch', which finmlops[train] installs: "
        "pip install -c requirements.lock 'finmlops[train]'\n")
