"""The command line: fast start, one readable line for a user's mistake, JSON where asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finmlops.cli import main

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
