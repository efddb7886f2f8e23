"""Promotion as a GitOps change: the declared state of one environment's experiment.

Each environment's tree holds ``promotion.yaml``: a ConfigMap ``finmlops-promotion`` whose
``promotion.json`` declares which registered versions carry the ``champion`` and
``previous-champion`` aliases and which experiment weights are in force. On the cluster,
``finmlops abtest decide --apply`` changes it through a commit (or a branch for review); Argo
CD syncs the ConfigMap and runs the ``finmlops-promotion`` workflow as a PostSync hook, which
makes the registry and the ledger match it (``finmlops promotion apply``). Rolling back is
``git revert``: the file goes back to what it declared before, and the next sync applies that.

The render seeds the file with no declared state (``state: null``) and never overwrites it;
the first promotion first commits the state in force, so even it has a parent to revert to.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finmlops.config import ExperimentSettings, Settings
from finmlops.deploy._git import Checkout, Commit, GitClient, Pushed
from finmlops.deploy._k8s import (
    PROMOTION_CONFIG_MAP,
    PROMOTION_FILE,
    Manifest,
    meta,
    namespace,
)
from finmlops.deploy._yaml import dump_yaml
from finmlops.errors import ConfigError

PROMOTION_YAML = "promotion.yaml"
"""The file in ``<gitops.path>/environments/<env>/`` (a seed the render never overwrites)."""
HEADER = ("# The promotion state of this environment, written by `finmlops abtest decide "
          "--apply`.\n# Argo CD applies it after each sync; roll a change back with `git "
          "revert`.\n")
Action = Literal["record", "promote", "rollback"]
DECLARED_TRAILER = "Declared-State"
"""The commit message line naming the state a commit declared (its digest)."""


class PromotionState(BaseModel):
    """What one environment declares: aliases, weights, and the decision behind them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registered_model: str
    aliases: dict[str, str]
    """``champion`` and ``previous-champion`` (the aliases a promotion moves) -> version."""
    experiment: ExperimentSettings
    """The experiment in force, weights included."""
    versions: dict[str, str] = Field(default_factory=dict)
    """The registered version behind each arm when this was decided."""
    rejected: list[str] = Field(default_factory=list)
    """Versions rolled back by this change (tagged so, and no longer ``challenger``)."""
    action: Action
    reason: str
    actor: str
    decided_at: str
    decision: dict[str, Any] = Field(default_factory=dict)
    """The decision's test and always-valid numbers (for the reviewer)."""

    def same_declaration(self, other: PromotionState | None) -> bool:
        """Whether ``other`` declares the same aliases, weights and rejections."""
        return other is not None and (self.aliases, self.experiment, sorted(self.rejected)) == (
            other.aliases, other.experiment, sorted(other.rejected))

    def digest(self) -> str:
        """A short hash of what is declared (names review branches)."""
        text = json.dumps({"aliases": self.aliases, "rejected": sorted(self.rejected),
                           "experiment": self.experiment.model_dump(mode="json")},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


class PromotionFile(BaseModel):
    """``promotion.json``: ``state`` is ``None`` until the first promotion records one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    environment: str
    state: PromotionState | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def promotion_configmap(settings: Settings, record: PromotionFile) -> Manifest:
    """The ConfigMap the ``finmlops-promotion`` workflow mounts (pipelines namespace)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(PROMOTION_CONFIG_MAP, namespace(settings, "pipelines"),
                             "promotion"),
            "data": {PROMOTION_FILE: record.to_json()}}


def seed_record(environment: str) -> PromotionFile:
    """The file's first content: nothing declared yet."""
    return PromotionFile(environment=environment)


def render_file(settings: Settings, record: PromotionFile) -> str:
    return HEADER + dump_yaml([promotion_configmap(settings, record)])


def update_file(text: str, where: str, record: PromotionFile) -> str:
    """``promotion.yaml`` with ``record`` as its ``promotion.json``; the ConfigMap's
    metadata (namespace, labels: what the render wrote) is kept as it is."""
    try:
        doc = yaml.safe_load(text)
        doc["data"][PROMOTION_FILE] = record.to_json()
    except (yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(f"{where}: not a {PROMOTION_CONFIG_MAP} ConfigMap with "
                          f"{PROMOTION_FILE}") from None
    return HEADER + dump_yaml([doc])


def parse_record(text: str, where: str) -> PromotionFile:
    """A ``promotion.json`` body; :class:`ConfigError` naming ``where`` when it is not one."""
    try:
        return PromotionFile.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: not a promotion record ({loc}: {first['msg']})") from None


def parse_file(text: str, where: str) -> PromotionFile:
    """The record inside a ``promotion.yaml`` (the ConfigMap)."""
    try:
        doc = yaml.safe_load(text)
        body = doc["data"][PROMOTION_FILE]
    except (yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(f"{where}: not a {PROMOTION_CONFIG_MAP} ConfigMap with "
                          f"{PROMOTION_FILE}") from None
    return parse_record(str(body), where)


def review_branch(environment: str, state: PromotionState) -> str:
    """One branch per declared state, so re-deciding the same change proposes it once."""
    return f"finmlops/promote/{environment}/{state.action}-{state.digest()}"


def commit_message(environment: str, state: PromotionState) -> str:
    champion = state.aliases.get("champion", "-")
    weights = ", ".join(f"{c.name} {c.weight}" for c in state.experiment.candidates)
    if state.action == "record":
        title = f"finmlops {environment}: record the promotion state in force"
    else:
        title = (f"finmlops {environment}: {state.action} ({state.registered_model} champion "
                 f"v{champion}; {weights})")
    body = [f"Reason: {state.reason}", f"Actor: {state.actor}", f"Decided: {state.decided_at}",
            f"{DECLARED_TRAILER}: {state.digest()}",
            f"Aliases: {json.dumps(state.aliases, sort_keys=True)}",
            f"Versions: {json.dumps(state.versions, sort_keys=True)}"]
    if state.rejected:
        body.append(f"Rejected: {', '.join(state.rejected)}")
    return title + "\n\n" + "\n".join(body) + "\n"


def already_handed_over(current: PromotionState | None, planned: PromotionState) -> bool:
    """Whether the record already declares ``planned``: the same aliases and weights, or the
    same action on the same versions (deciding "promote" again after a promotion must not
    swap the weights back)."""
    if current is None:
        return False
    same_decision = (current.action == planned.action and current.versions == planned.versions)
    return planned.same_declaration(current) or same_decision


def plan_commits(rel: str, text: str, environment: str, in_force: PromotionState,
                 planned: PromotionState, earlier: list[str] | None = None) -> list[Commit]:
    """The commits that hand ``planned`` over through the file at ``rel`` (its text
    ``text``): none when it is already declared, or when ``earlier`` (commits that declared
    it before) is not empty: it was handed over and reverted since, and a revert is a human
    decision the daily job must not undo. The state in force comes first when the file
    declares none yet, so the promotion itself can be reverted."""
    current = parse_file(text, rel)
    if current.environment != environment:
        raise ConfigError(f"{rel} belongs to environment {current.environment!r}, not "
                          f"{environment!r}")
    if already_handed_over(current.state, planned) or earlier:
        return []
    commits = []
    if current.state is None:
        text = update_file(text, rel, PromotionFile(environment=environment, state=in_force))
        commits.append(Commit(commit_message(environment, in_force), {rel: text}))
    text = update_file(text, rel, PromotionFile(environment=environment, state=planned))
    commits.append(Commit(commit_message(environment, planned), {rel: text}))
    return commits


def promotion_path(settings: Settings) -> str:
    """The record's path in the config repository (``gitops.path``, ``gitops.environment``)."""
    g = settings.gitops
    return f"{g.path.strip('/')}/environments/{g.environment}/{PROMOTION_YAML}"


def propose(settings: Settings, in_force: PromotionState, planned: PromotionState, *,
            client: GitClient | None = None) -> Pushed:
    """Hand ``planned`` over as a commit on ``gitops.branch`` or, with ``gitops.review``, on a
    branch of its own (one per declared state: proposing it again does nothing)."""
    g = settings.gitops
    repo = g.repo or settings.deploy.git_repo
    git = client or GitClient(repo, g.author,
                              g.token.get_secret_value() if g.token is not None else None)
    rel = promotion_path(settings)
    target = review_branch(g.environment, planned) if g.review else g.branch
    if g.review and git.branch_exists(target):
        return Pushed(repo, target, [], False, "already proposed on this branch")

    reverted: list[str] = []

    def change(checkout: Checkout) -> list[Commit]:
        text = checkout.read(rel)
        if text is None:
            raise ConfigError(f"{repo} has no {rel}: commit the rendered tree "
                              "(`finmlops deploy render`) first")
        earlier = checkout.commits_mentioning(f"{DECLARED_TRAILER}: {planned.digest()}")
        current = parse_file(text, rel).state
        if earlier and not already_handed_over(current, planned):
            reverted[:] = earlier
        return plan_commits(rel, text, g.environment, in_force, planned, earlier)

    pushed = git.change(g.branch, change, push_to=target)
    if reverted:
        return Pushed(repo, target, [], False,
                      f"declared before in {reverted[0][:12]} and reverted since: not "
                      "proposed again (a revert is a human decision; commit by hand to "
                      "promote anyway)")
    return pushed
