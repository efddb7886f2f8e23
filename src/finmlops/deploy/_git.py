"""A thin shell over the ``git`` program: clone, commit and push one file's change.

The token (``gitops.token``) reaches git through a credential helper that reads it from the
child's environment, so it never appears on a command line, in a remote URL or in an error.
A push that loses a race (another change landed first) starts over from a fresh clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finmlops.errors import SourceError

TOKEN_ENV = "FINMLOPS_GIT_TOKEN"  # noqa: S105 - the name of a variable, not a value
_HELPER = ("!f() { test \"$1\" = get || exit 0; echo username=x-access-token; "
           f"echo \"password=${TOKEN_ENV}\"; }}; f")
ATTEMPTS = 3

@dataclass(frozen=True)
class Commit:
    """One commit to make: its message and the files it writes (path in the repo -> text)."""

    message: str
    files: Mapping[str, str]


class Checkout:
    """A fresh clone, as a change sees it: files and the history of commit messages."""

    def __init__(self, client: GitClient, root: Path) -> None:
        self.client = client
        self.root = root

    def read(self, rel: str) -> str | None:
        """A file's text (path in the repo), ``None`` when absent."""
        path = _inside(self.root, rel)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def commits_mentioning(self, text: str) -> list[str]:
        """Commits on the branch whose message contains ``text``, newest first."""
        out = self.client.run("log", "--fixed-strings", f"--grep={text}", "--format=%H",
                              cwd=self.root)
        return [line for line in out.split() if line]


Change = Callable[[Checkout], Sequence[Commit]]
"""Given the checkout, the commits to make, oldest first (none: nothing to change). Called
once per attempt."""


@dataclass(frozen=True)
class Pushed:
    """What a change did: the commits made (oldest first), where they went."""

    repo: str
    branch: str
    commits: list[str]
    pushed: bool
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {"repo": _redacted(self.repo), "branch": self.branch, "commits": self.commits,
                "pushed": self.pushed, "note": self.note}


def _redacted(url: str) -> str:
    """A URL without user info (a URL that carries credentials is never printed)."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@dataclass(frozen=True)
class GitClient:
    repo: str
    author: str
    """``Name <email>``."""
    token: str | None = None
    git: str = "git"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1",
                   GIT_AUTHOR_NAME=self._name(), GIT_AUTHOR_EMAIL=self._email(),
                   GIT_COMMITTER_NAME=self._name(), GIT_COMMITTER_EMAIL=self._email())
        env.pop(TOKEN_ENV, None)
        if self.token:
            env[TOKEN_ENV] = self.token
        return env

    def _name(self) -> str:
        return self.author.split("<", 1)[0].strip() or "finmlops"

    def _email(self) -> str:
        return self.author.split("<", 1)[1].rstrip(">").strip() if "<" in self.author \
            else "finmlops@localhost"

    def command(self, *args: str) -> list[str]:
        """The argv of one git call (the credential helper reads the token from the env)."""
        return [self.git, "-c", "credential.helper=", "-c", f"credential.helper={_HELPER}",
                "-c", "core.hooksPath=/dev/null", *args]

    def run(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        if shutil.which(self.git) is None:
            raise SourceError(f"the git program ({self.git}) is not installed")
        proc = subprocess.run(self.command(*args), cwd=cwd, env=self._env(),
                              capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            detail = lines[-1] if lines else f"exit {proc.returncode}"
            if self.token:
                detail = detail.replace(self.token, "***")
            raise SourceError(f"git {args[0]} {_redacted(self.repo)}: {detail}")
        return proc.stdout

    def branch_exists(self, branch: str) -> bool:
        out = self.run("ls-remote", "--heads", self.repo, f"refs/heads/{branch}")
        return bool(out.strip())

    def change(self, base: str, change: Change, *, push_to: str | None = None) -> Pushed:
        """Clone ``base``, apply ``change``, commit, push to ``push_to`` (default ``base``).
        A rejected push (the branch moved meanwhile) is retried from a fresh clone."""
        target = push_to or base
        for attempt in range(ATTEMPTS):
            with tempfile.TemporaryDirectory(prefix="finmlops-gitops-") as tmp:
                work = Path(tmp) / "repo"
                # The whole history of commits, file contents fetched as needed.
                self.run("clone", "--quiet", "--filter=blob:none", "--single-branch",
                         "--branch", base, self.repo, str(work))
                planned = list(change(Checkout(self, work)))
                if not planned:
                    return Pushed(self.repo, target, [], False, "nothing to change")
                commits = []
                for commit in planned:
                    for rel, text in commit.files.items():
                        path = _inside(work, rel)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(text, encoding="utf-8")
                        self.run("add", "--", rel, cwd=work)
                    self.run("commit", "--quiet", "--allow-empty", "-m", commit.message,
                             cwd=work)
                    commits.append(self.run("rev-parse", "HEAD", cwd=work).strip())
                pushed = subprocess.run(
                    self.command("push", "--quiet", "origin", f"HEAD:refs/heads/{target}"),
                    cwd=work, env=self._env(), capture_output=True, text=True, timeout=300,
                    check=False)
                if pushed.returncode == 0:
                    return Pushed(self.repo, target, commits, True)
                rejected = "rejected" in pushed.stderr or "fetch first" in pushed.stderr
                if not rejected or attempt + 1 == ATTEMPTS:
                    detail = (pushed.stderr.strip().splitlines() or ["push failed"])[-1]
                    if self.token:
                        detail = detail.replace(self.token, "***")
                    raise SourceError(f"git push {_redacted(self.repo)} {target}: {detail}")
        raise AssertionError("unreachable")  # pragma: no cover


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{rel!r} is outside the repository")
    return path
