"""Promotion as a GitOps change, through the real ``git`` program and bare repositories:
what is committed, where (the tracked branch or a review branch), once, never undoing a
revert, racing another push, and never showing the token."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import ExperimentSettings, Settings
from finmlops.deploy import PromotionFile, PromotionState, render_kubernetes, write_rendered
from finmlops.deploy._git import Checkout, Commit, GitClient
from finmlops.deploy.gitops import (
    DECLARED_TRAILER,
    already_handed_over,
    parse_file,
    plan_commits,
    promotion_path,
    propose,
    render_file,
    review_branch,
    seed_record,
    update_file,
)
from finmlops.errors import ConfigError, SourceError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

ENV_GIT = {"PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "op", "GIT_AUTHOR_EMAIL": "op@x",
           "GIT_COMMITTER_NAME": "op", "GIT_COMMITTER_EMAIL": "op@x", "HOME": "/tmp"}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env=ENV_GIT).stdout


def _state(action: str = "promote", champion: str = "2", weights: tuple[int, int] = (30, 70),
           previous: str | None = "1", rejected: tuple[str, ...] = ()) -> PromotionState:
    aliases = {"champion": champion, **({"previous-champion": previous} if previous else {})}
    experiment = ExperimentSettings(candidates=[{"name": "baseline", "weight": weights[0]},
                                                {"name": "enhanced", "weight": weights[1]}])
    return PromotionState(registered_model="ibb-direction", aliases=aliases,
                          experiment=experiment, versions={"baseline": "1", "enhanced": "2"},
                          rejected=list(rejected), action=action,  # type: ignore[arg-type]
                          reason="CS above 0", actor="test", decided_at="2020-01-02T03:30:00")


IN_FORCE = _state("record", champion="1", weights=(70, 30), previous=None)
PLANNED = _state()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Settings]:
    """A bare config repository holding the rendered tree, and settings that promote into its
    prod environment."""
    bare = tmp_path / "config.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "seed"
    git("clone", "--quiet", str(bare), str(work))
    write_rendered(render_kubernetes(Settings()), work / "deploy" / "k8s")
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "the rendered tree", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    settings = Settings(gitops={"enabled": True, "repo": f"file://{bare}",
                                "environment": "prod"})
    return bare, settings


def _record(bare: Path, settings: Settings, ref: str = "main") -> PromotionFile:
    return parse_file(git("show", f"{ref}:{promotion_path(settings)}", cwd=bare), "repo")


def test_a_promotion_commits_the_state_in_force_then_the_change(
        repo: tuple[Path, Settings]) -> None:
    bare, settings = repo
    assert _record(bare, settings).state is None  # the seed
    pushed = propose(settings, IN_FORCE, PLANNED)
    assert pushed.pushed and pushed.branch == "main" and len(pushed.commits) == 2
    log = git("log", "--format=%H%x00%s%x00%b%x1e", "main", cwd=bare).split("\x1e")
    newest, older = ([f.strip() for f in e.split("\x00")] for e in log[:2])
    assert [newest[0], older[0]] == pushed.commits[::-1]
    assert "promote (ibb-direction champion v2; baseline 30, enhanced 70)" in newest[1]
    assert f"{DECLARED_TRAILER}: {PLANNED.digest()}" in newest[2]
    assert "record the promotion state in force" in older[1]
    assert _record(bare, settings).state == PLANNED
    assert _record(bare, settings, f"{pushed.commits[0]}").state == IN_FORCE
    # The ConfigMap keeps what the render wrote (namespace, labels); only the record changed.
    text = git("show", f"main:{promotion_path(settings)}", cwd=bare)
    assert "namespace: finmlops-pipelines" in text and "component: promotion" in text


def test_proposing_again_changes_nothing(repo: tuple[Path, Settings]) -> None:
    bare, settings = repo
    propose(settings, IN_FORCE, PLANNED)
    head = git("rev-parse", "main", cwd=bare)
    again = propose(settings, IN_FORCE, PLANNED)
    assert not again.pushed and again.note == "nothing to change"
    # After the sync the registry holds PLANNED; the same decision again (the arms' weights
    # now swapped) must not swap them back.
    after_sync = PLANNED.model_copy(update={"action": "record"})
    swap_back = _state(weights=(70, 30))
    assert not propose(settings, after_sync, swap_back).pushed
    assert git("rev-parse", "main", cwd=bare) == head


def test_a_revert_is_not_undone_by_the_next_decision(repo: tuple[Path, Settings],
                                                    tmp_path: Path) -> None:
    bare, settings = repo
    pushed = propose(settings, IN_FORCE, PLANNED)
    work = tmp_path / "operator"
    git("clone", "--quiet", str(bare), str(work))
    git("revert", "--no-edit", pushed.commits[-1], cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    assert _record(bare, settings).state == IN_FORCE  # the revert restored the state
    again = propose(settings, IN_FORCE, PLANNED)
    assert not again.pushed and "reverted since" in again.note
    assert git("rev-parse", "main", cwd=bare) == git("rev-parse", "HEAD", cwd=work)
    # A different decision (a rollback) is still proposed.
    rollback = _state("rollback", champion="1", weights=(100, 0), previous=None,
                      rejected=("2",))
    assert propose(settings, IN_FORCE, rollback).pushed


def test_review_mode_pushes_a_branch_once_and_leaves_main(repo: tuple[Path, Settings]) -> None:
    bare, plain = repo
    settings = plain.model_copy(update={"gitops": plain.gitops.model_copy(
        update={"review": True})})
    main = git("rev-parse", "main", cwd=bare)
    pushed = propose(settings, IN_FORCE, PLANNED)
    branch = review_branch("prod", PLANNED)
    assert pushed.pushed and pushed.branch == branch and branch.startswith("finmlops/promote/")
    assert git("rev-parse", "main", cwd=bare) == main
    assert _record(bare, settings, branch).state == PLANNED
    again = propose(settings, IN_FORCE, PLANNED)
    assert not again.pushed and "already proposed" in again.note


def test_a_push_that_loses_a_race_starts_over(repo: tuple[Path, Settings],
                                              tmp_path: Path) -> None:
    bare, _ = repo
    other = tmp_path / "other"
    git("clone", "--quiet", str(bare), str(other))
    calls: list[int] = []

    def change(checkout: Checkout) -> list[Commit]:
        calls.append(1)
        if len(calls) == 1:  # someone else pushes between our clone and our push
            (other / "NOTES.md").write_text("meanwhile\n")
            git("add", "NOTES.md", cwd=other)
            git("commit", "--quiet", "-m", "meanwhile", cwd=other)
            git("push", "--quiet", "origin", "HEAD:main", cwd=other)
        return [Commit("ours", {"ours.txt": f"attempt {len(calls)}\n"})]

    pushed = GitClient(f"file://{bare}", "finmlops <f@x>").change("main", change)
    assert pushed.pushed and len(calls) == 2
    subjects = git("log", "--format=%s", "-3", "main", cwd=bare).split("\n")
    assert subjects[:2] == ["ours", "meanwhile"]
    assert git("show", "main:ours.txt", cwd=bare) == "attempt 2\n"


def test_the_token_reaches_git_through_its_credential_helper_only() -> None:
    client = GitClient("https://git.example.com/acme/config.git", "f <f@x>", token="tok-S3CR3T")
    argv = client.command("push", "origin", "HEAD:refs/heads/main")
    assert not [a for a in argv if "tok-S3CR3T" in a]
    # git itself asks the helper and gets the token back from the child's environment.
    proc = subprocess.run(client.command("credential", "fill"), input=(
        "protocol=https\nhost=git.example.com\npath=acme/config.git\n\n"),
        capture_output=True, text=True, env=client._env(), check=True)
    assert "username=x-access-token" in proc.stdout and "password=tok-S3CR3T" in proc.stdout


def test_git_errors_are_one_line_without_credentials(tmp_path: Path) -> None:
    client = GitClient("https://user:tok-S3CR3T@127.0.0.1:9/none.git", "f <f@x>",
                       token="tok-S3CR3T")
    with pytest.raises(SourceError) as err:
        client.change("main", lambda checkout: [])
    message = err.value.message
    assert "tok-S3CR3T" not in message and "***@127.0.0.1:9" in message
    assert "\n" not in message


def test_a_repository_without_the_rendered_tree_is_a_clear_error(tmp_path: Path) -> None:
    bare = tmp_path / "empty.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "w"
    git("clone", "--quiet", str(bare), str(work))
    (work / "README").write_text("x\n")
    git("add", "README", cwd=work)
    git("commit", "--quiet", "-m", "x", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    settings = Settings(gitops={"enabled": True, "repo": f"file://{bare}"})
    with pytest.raises(ConfigError, match=r"has no deploy/k8s/environments/prod/promotion.yaml"):
        propose(settings, IN_FORCE, PLANNED)


def test_plan_commits_is_pure_and_refuses_another_environments_file() -> None:
    settings = Settings()
    seed = render_file(settings, seed_record("prod"))
    rel = "deploy/k8s/environments/prod/promotion.yaml"
    commits = plan_commits(rel, seed, "prod", IN_FORCE, PLANNED)
    assert [parse_file(c.files[rel], rel).state for c in commits] == [IN_FORCE, PLANNED]
    declared = update_file(seed, rel, PromotionFile(environment="prod", state=PLANNED))
    assert plan_commits(rel, declared, "prod", IN_FORCE, PLANNED) == []
    assert plan_commits(rel, seed, "prod", IN_FORCE, PLANNED, earlier=["abc"]) == []
    with pytest.raises(ConfigError, match="belongs to environment 'prod', not 'dev'"):
        plan_commits(rel, seed, "dev", IN_FORCE, PLANNED)
    for broken in ("not: [yaml", "kind: ConfigMap\n", '{"data": {"promotion.json": "{}"}}'):
        with pytest.raises(ConfigError, match="promotion"):
            parse_file(broken, rel)


@pytest.mark.parametrize(("current", "planned", "handed"), [
    (None, PLANNED, False),
    (PLANNED, PLANNED, True),
    (PLANNED.model_copy(update={"actor": "someone else", "reason": "x"}), PLANNED, True),
    (PLANNED, _state(weights=(70, 30)), True),  # same action on the same versions
    (PLANNED, _state("rollback", champion="1", previous=None, rejected=("2",)), False),
    (IN_FORCE, PLANNED, False),
])
def test_already_handed_over(current: PromotionState | None, planned: PromotionState,
                             handed: bool) -> None:
    assert already_handed_over(current, planned) is handed


def test_the_record_round_trips_through_the_configmap(make_settings: Callable[..., Any]) -> None:
    settings = make_settings()
    text = render_file(settings, PromotionFile(environment="prod", state=PLANNED))
    record = parse_file(text, "x")
    assert record.state == PLANNED and record.environment == "prod"
    assert json.loads(record.to_json())["format"] == 1
