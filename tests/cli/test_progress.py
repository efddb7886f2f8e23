"""The stage progress display: a bar that moves on a terminal, heartbeat lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from finmlops.cli._progress import HEARTBEAT_S, ConsoleReporter


def test_off_a_terminal_long_stages_print_heartbeats_and_no_blank_line() -> None:
    out = io.StringIO()
    now = [0.0]
    with ConsoleReporter(Console(file=out, width=160), clock=lambda: now[0]) as rep:
        rep.stage_started("train", "walk-forward")
        rep.progress("training baseline", 0, 2)  # quick: no line
        now[0] = HEARTBEAT_S + 1
        rep.progress("baseline: fold 3/21 (2008) accuracy 0.512")
        now[0] += 1
        rep.progress("baseline: fold 4/21 (2009) accuracy 0.498")  # too soon after the last
        now[0] += HEARTBEAT_S
        rep.progress("training enhanced", 1, 2)
        rep.stage_finished("train", now[0], "done")
    lines = out.getvalue().splitlines()
    assert lines == ["  train     baseline: fold 3/21 (2008) accuracy 0.512",
                     "  train     training enhanced (1/2)",
                     f"✓ train     {now[0]:6.1f}s  done"]
    assert out.getvalue().endswith("done\n")


def test_a_message_without_counts_keeps_the_bar_where_it_was() -> None:
    rep = ConsoleReporter(Console(file=io.StringIO(), force_terminal=True, width=120))
    rep.stage_started("train", "walk-forward")
    rep.progress("training enhanced", 1, 2)
    rep.progress("enhanced: fold 1/21 (2006) accuracy 0.454")
    task = rep._progress.tasks[0]
    assert (task.completed, task.total) == (1, 2)
    assert task.description.startswith("enhanced: fold 1/21")
    rep.progress("trained", 2, 2)
    assert task.percentage == 100
