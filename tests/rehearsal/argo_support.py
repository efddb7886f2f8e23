"""Runs rendered Argo workflows on one machine, step by step, as their containers would run.

Not an orchestrator: it walks one rendered workflow (a WorkflowTemplate, a CronWorkflow's
``workflowSpec`` or a Workflow naming a template) in the order its DAG gives, and runs each
container step's rendered ``command`` and ``args`` with the rendered environment, in a
process of its own:

- ``finmlops`` is ``python -m finmlops`` from the test's interpreter (the image's program);
- each ``volumeMount`` is a local directory (an ``emptyDir`` per pod, the workflow's claim
  shared by its pods, a ConfigMap's files), and every path under a mount point in an argument
  or an environment value is the same path under that directory, as a container sees it;
- a ``secretKeyRef`` is looked up in the secrets the test hands over, as the kubelet would;
- ``$(VAR)`` in a command line is the kubelet's expansion;
- output parameters are the files the step wrote at ``valueFrom.path``; output artifacts are
  uploaded to the artifact repository the workflow names (``<keyFormat>/<artifact name>``),
  as Argo's wait container would;
- ``{{...}}`` variables are substituted the way Argo does for the ones the rendered objects
  use (workflow parameters, inputs, task outputs, ``item`` of ``withParam``, the workflow's
  name, namespace, creation timestamp, status and failures); ``when`` supports ``==`` and
  ``!=``; a ``resource`` step's ``create`` is recorded for the test to run;
- ``onExit`` runs after the DAG, and a template's metrics are recorded when it ran.

Anything else a rendered object asks for (an unknown template type, field or variable) is an
error, so a workflow that only "works" because the harness ignores part of it cannot pass.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WORKFLOW_KEYS = {
    "entrypoint", "onExit", "arguments", "templates", "volumes", "volumeClaimTemplates",
    "volumeClaimGC", "serviceAccountName", "securityContext", "podGC", "ttlStrategy",
    "podMetadata", "activeDeadlineSeconds", "synchronization", "artifactRepositoryRef",
    "workflowTemplateRef", "workflowMetadata"}
TEMPLATE_KEYS = {"name", "container", "inputs", "outputs", "metadata", "activeDeadlineSeconds",
                 "retryStrategy", "metrics", "dag", "steps", "resource"}
CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "command", "args", "env", "resources",
                  "securityContext", "volumeMounts"}
_VAR = re.compile(r"{{\s*([^{}]+?)\s*}}")


class Unsupported(AssertionError):
    """A rendered field the harness does not know how to run."""


@dataclass
class Node:
    """One step that ran (or was skipped)."""

    name: str
    template: str
    phase: str
    outputs: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    message: str = ""


@dataclass
class Run:
    """A finished workflow: its status, nodes, outputs, created objects and metrics."""

    name: str
    status: str
    nodes: list[Node]
    outputs: dict[str, str]
    created: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    artifacts: dict[str, str]
    """Artifact name -> the S3 key it was uploaded under."""
    mutexes: list[str]

    def node(self, name: str) -> Node:
        (found,) = [n for n in self.nodes if n.name == name]
        return found

    def ran(self, name: str) -> bool:
        return any(n.name == name and n.phase != "Skipped" for n in self.nodes)


@dataclass
class Cluster:
    """What the rendered pods are mapped onto on this machine."""

    root: Path
    templates: dict[str, dict[str, Any]]
    """WorkflowTemplate name -> object (for ``workflowTemplateRef``)."""
    config_maps: dict[str, dict[str, str]]
    """ConfigMap name (pipelines namespace) -> data."""
    secrets: dict[tuple[str, str], str]
    """(Secret name, key) -> value."""
    s3: Callable[[str, str, str, str], None]
    """``upload(endpoint, bucket, key, local path)`` for output artifacts."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """What the image provides beyond the rendered env (PATH, the interpreter's path)."""
    log: list[str] = field(default_factory=list)

    def run(self, obj: dict[str, Any], *, parameters: Mapping[str, str] | None = None,
            created: dt.datetime | None = None, name: str | None = None) -> Run:
        """Run a rendered workflow object; ``parameters`` as ``argo submit -p`` gives them."""
        spec, given = self._resolve(obj)
        merged = {**given, **(parameters or {})}
        wf_name = name or f"{obj['metadata'].get('name') or obj['metadata']['generateName']}" \
                          f"{uuid.uuid4().hex[:5]}"
        run = _WorkflowRun(self, spec, wf_name, obj["metadata"].get("namespace", ""),
                           merged, created or dt.datetime.now(dt.UTC))
        return run.execute()

    def _resolve(self, obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        given = {p["name"]: p.get("value", "") for p in
                 (spec.get("arguments") or {}).get("parameters", [])}
        ref = spec.get("workflowTemplateRef")
        if ref is None:
            return spec, given
        unknown = set(spec) - {"workflowTemplateRef", "arguments", "workflowMetadata"}
        if unknown:
            raise Unsupported(f"fields beside workflowTemplateRef: {sorted(unknown)}")
        template = self.templates[ref["name"]]["spec"]
        defaults = {p["name"]: p.get("value", "") for p in
                    (template.get("arguments") or {}).get("parameters", [])}
        return template, {**defaults, **given}


class _WorkflowRun:
    def __init__(self, cluster: Cluster, spec: dict[str, Any], name: str, namespace: str,
                 parameters: dict[str, str], created: dt.datetime) -> None:
        unknown = set(spec) - WORKFLOW_KEYS
        if unknown:
            raise Unsupported(f"workflow fields {sorted(unknown)}")
        self.c = cluster
        self.spec = spec
        self.name = name
        self.namespace = namespace
        self.params = parameters
        self.created = created
        self.templates = {t["name"]: t for t in spec["templates"]}
        for t in spec["templates"]:
            extra = set(t) - TEMPLATE_KEYS
            if extra:
                raise Unsupported(f"template {t['name']}: fields {sorted(extra)}")
        self.dir = cluster.root / "workflows" / name
        self.dir.mkdir(parents=True)
        self.nodes: list[Node] = []
        self.created_objects: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.artifacts: dict[str, str] = {}
        self.claims = {c["metadata"]["name"]: self.dir / "claims" / c["metadata"]["name"]
                       for c in spec.get("volumeClaimTemplates", [])}
        self.status = "Running"

    # -- variables --------------------------------------------------------------------------

    def _globals(self) -> dict[str, str]:
        """The workflow's variables; a parameter's value may itself name the workflow's
        (``end: {{workflow.creationTimestamp.Y}}-...``), resolved when the workflow starts."""
        ts = self.created
        base = {"workflow.name": self.name, "workflow.namespace": self.namespace,
                "workflow.creationTimestamp.Y": f"{ts:%Y}",
                "workflow.creationTimestamp.m": f"{ts:%m}",
                "workflow.creationTimestamp.d": f"{ts:%d}"}
        return {**base, **{f"workflow.parameters.{k}": self._sub(v, base)
                           for k, v in self.params.items()}}

    def _sub(self, text: str, scope: Mapping[str, str]) -> str:
        def value(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in scope:
                raise Unsupported(f"variable {{{{{key}}}}} is not defined here")
            return scope[key]

        return _VAR.sub(value, text)

    # -- running ----------------------------------------------------------------------------

    def execute(self) -> Run:
        mutexes = [m["name"] for m in (self.spec.get("synchronization") or {})
                   .get("mutexes", [])]
        entry = self.templates[self.spec["entrypoint"]]
        scope = self._globals()
        try:
            outputs = self._template(entry, {}, scope, entry["name"])
            self.status = "Succeeded" if all(
                n.phase in ("Succeeded", "Skipped") for n in self.nodes) else "Failed"
        except _StepFailed:
            outputs, self.status = {}, "Failed"
        if "onExit" in self.spec:
            failures = [{"displayName": n.name, "templateName": n.template,
                         "phase": n.phase, "message": n.message}
                        for n in self.nodes if n.phase == "Failed"]
            exit_scope = {**self._globals(), "workflow.status": self.status,
                          "workflow.failures": json.dumps(failures)}
            handler = self.templates[self.spec["onExit"]]
            with contextlib.suppress(_StepFailed):
                self._template(handler, {}, exit_scope, "onExit")
        return Run(self.name, self.status, self.nodes, outputs, self.created_objects,
                   self.metrics, self.artifacts, mutexes)

    def _template(self, t: dict[str, Any], inputs: dict[str, str], scope: dict[str, str],
                  node: str) -> dict[str, str]:
        declared = [p["name"] for p in (t.get("inputs") or {}).get("parameters", [])]
        if set(inputs) != set(declared):
            raise Unsupported(f"{t['name']}: inputs {sorted(inputs)} for {declared}")
        local = {**scope, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        if "dag" in t:
            return self._dag(t, local)
        if "steps" in t:
            for group in t["steps"]:
                for step in group:
                    if set(step) - {"name", "template", "when", "arguments"}:
                        raise Unsupported(f"step fields {sorted(step)}")
                    if "when" in step and not _when(self._sub(step["when"], local)):
                        self.nodes.append(Node(step["name"], step["template"], "Skipped"))
                        continue
                    self._template(self.templates[step["template"]], {}, local, step["name"])
            return {}
        if "resource" in t:
            res = t["resource"]
            if set(res) - {"action", "manifest"} or res["action"] != "create":
                raise Unsupported(f"resource {res}")
            manifest = yaml.safe_load(self._sub(res["manifest"], local))
            self.created_objects.append(manifest)
            generated = f"{manifest['metadata'].get('generateName', '')}{uuid.uuid4().hex[:5]}"
            out = {}
            for p in (t.get("outputs") or {}).get("parameters", []):
                if p["valueFrom"] != {"jsonPath": "{.metadata.name}"}:
                    raise Unsupported(f"resource output {p}")
                out[p["name"]] = generated
            self.nodes.append(Node(node, t["name"], "Succeeded", out))
            return out
        if "container" in t:
            return self._container(t, local, node)
        raise Unsupported(f"template {t['name']} has no dag, steps, resource or container")

    def _dag(self, t: dict[str, Any], scope: dict[str, str]) -> dict[str, str]:
        tasks = {task["name"]: task for task in t["dag"]["tasks"]}
        done: dict[str, str] = {}  # task -> phase
        outputs: dict[str, dict[str, str]] = {}
        while len(done) < len(tasks):
            ready = [n for n, task in tasks.items() if n not in done
                     and all(d in done for d in _depends(task))]
            if not ready:
                raise Unsupported(f"DAG {t['name']}: a cycle or a missing dependency")
            for n in ready:
                task = tasks[n]
                if set(task) - {"name", "template", "depends", "arguments", "when",
                                "withParam"}:
                    raise Unsupported(f"task fields {sorted(task)}")
                if any(done[d] != "Succeeded" for d in _depends(task)):
                    done[n] = "Omitted"
                    continue
                task_scope = {**scope, **{f"tasks.{k}.outputs.parameters.{p}": v
                                          for k, o in outputs.items() for p, v in o.items()}}
                if "when" in task and not _when(self._sub(task["when"], task_scope)):
                    done[n] = "Skipped"
                    self.nodes.append(Node(n, task["template"], "Skipped"))
                    continue
                items = [None] if "withParam" not in task else json.loads(
                    self._sub(task["withParam"], task_scope))
                collected: dict[str, list[str]] = {}
                for i, item in enumerate(items):
                    item_scope = task_scope if item is None else {**task_scope,
                                                                  "item": str(item)}
                    args = {p["name"]: self._sub(str(p["value"]), item_scope)
                            for p in (task.get("arguments") or {}).get("parameters", [])}
                    node = n if item is None else f"{n}({i}:{item})"
                    out = self._template(self.templates[task["template"]], args, scope, node)
                    for k, v in out.items():
                        collected.setdefault(k, []).append(v)
                outputs[n] = ({k: v[0] for k, v in collected.items()} if "withParam" not in task
                              else {k: json.dumps(v) for k, v in collected.items()})
                done[n] = "Succeeded"
        final = {**scope, **{f"tasks.{k}.outputs.parameters.{p}": v
                             for k, o in outputs.items() for p, v in o.items()}}
        return {p["name"]: self._sub(p["valueFrom"]["parameter"], final)
                for p in (t.get("outputs") or {}).get("parameters", [])}

    def _container(self, t: dict[str, Any], scope: dict[str, str], node: str) -> dict[str, str]:
        c = t["container"]
        extra = set(c) - CONTAINER_KEYS
        if extra:
            raise Unsupported(f"container fields {sorted(extra)}")
        if c["command"] != ["finmlops"]:
            raise Unsupported(f"command {c['command']}")
        pod = self.dir / "pods" / f"{node.replace('/', '_')}-{uuid.uuid4().hex[:4]}"
        mounts = self._mounts(c.get("volumeMounts", []), pod)
        env = {}
        for e in c["env"]:
            if "value" in e:
                env[e["name"]] = _remap(self._sub(e["value"], scope), mounts)
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.c.secrets[(ref["name"], ref["key"])]
        args = [_remap(_expand(self._sub(a, scope), env), mounts) for a in c["args"]]
        proc_env = {**self.c.extra_env, **env}
        deadline = t.get("activeDeadlineSeconds")
        started = time.monotonic()
        self.c.log.append(f"{self.name}/{node}: finmlops {' '.join(args)}")
        proc = subprocess.run([sys.executable, "-m", "finmlops", *args], env=proc_env,
                              cwd=mounts.get("/tmp", pod), capture_output=True, text=True,
                              timeout=deadline, check=False)
        n = Node(node, t["name"], "Succeeded" if proc.returncode == 0 else "Failed",
                 exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr,
                 seconds=time.monotonic() - started)
        if proc.returncode != 0:
            n.message = f"Error (exit code {proc.returncode}): " + (
                proc.stderr.strip().splitlines() or [""])[-1]
        self.nodes.append(n)
        if os.environ.get("REHEARSAL_TIMES"):
            print(f"{self.name}/{node}: {n.seconds:.1f}s", flush=True)
        self._metrics(t, scope, n.phase)
        if proc.returncode != 0:
            raise _StepFailed(node)
        outputs = t.get("outputs") or {}
        for p in outputs.get("parameters", []):
            path = Path(_remap(p["valueFrom"]["path"], mounts))
            n.outputs[p["name"]] = path.read_text(encoding="utf-8")
        for a in outputs.get("artifacts", []):
            self._upload(a, Path(_remap(a["path"], mounts)), pod.name)
        return dict(n.outputs)

    def _metrics(self, t: dict[str, Any], scope: dict[str, str], phase: str) -> None:
        for m in (t.get("metrics") or {}).get("prometheus", []):
            local = {**scope, "status": phase}
            if "when" in m and not _when(self._sub(m["when"], local)):
                continue
            self.metrics.append({
                "name": m["name"], "help": m["help"],
                "labels": {x["key"]: self._sub(x["value"], local) for x in m["labels"]},
                "counter": self._sub(m["counter"]["value"], local)})

    def _mounts(self, mounts: list[dict[str, Any]], pod: Path) -> dict[str, Path]:
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        out: dict[str, Path] = {}
        for m in mounts:
            name = m["name"]
            if name in self.claims:
                path = self.claims[name]
            elif "emptyDir" in volumes[name]:
                path = pod / "volumes" / name
            elif "configMap" in volumes[name]:
                path = pod / "volumes" / name
                path.mkdir(parents=True, exist_ok=True)
                for key, text in self.c.config_maps[volumes[name]["configMap"]["name"]].items():
                    (path / key).write_text(text, encoding="utf-8")
            else:
                raise Unsupported(f"volume {volumes[name]}")
            path.mkdir(parents=True, exist_ok=True)
            out[m["mountPath"]] = path
        return out

    def _upload(self, artifact: dict[str, Any], path: Path, pod: str) -> None:
        ref = self.spec["artifactRepositoryRef"]
        repo = yaml.safe_load(self.c.config_maps[ref["configMap"]][ref["key"]])["s3"]
        key_format = repo["keyFormat"].replace("{{workflow.name}}", self.name).replace(
            "{{pod.name}}", pod)
        if "{{" in key_format:
            raise Unsupported(f"keyFormat {repo['keyFormat']}")
        scheme = "http" if repo.get("insecure") else "https"
        key = f"{key_format}/{artifact['name']}"
        self.c.s3(f"{scheme}://{repo['endpoint']}", repo["bucket"], key, str(path))
        self.artifacts[artifact["name"]] = key


class _StepFailed(Exception):
    pass


def _depends(task: dict[str, Any]) -> list[str]:
    expr = task.get("depends", "")
    names = [p.strip() for p in expr.split("&&") if p.strip()]
    for n in names:
        if not re.fullmatch(r"[\w-]+", n):
            raise Unsupported(f"depends expression {expr!r}")
    return names


def _when(expr: str) -> bool:
    m = re.fullmatch(r"\s*(\S+)\s*(==|!=)\s*(\S+)\s*", expr)
    if m is None:
        raise Unsupported(f"when expression {expr!r}")
    left, op, right = m.groups()
    return (left == right) == (op == "==")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion of a command line."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                  text)


def _remap(text: str, mounts: Mapping[str, Path]) -> str:
    """A container path under a mount point as the local path (the longest mount first)."""
    for mount in sorted(mounts, key=len, reverse=True):
        if text == mount or text.startswith(mount.rstrip("/") + "/"):
            return str(mounts[mount]) + text[len(mount.rstrip("/")):]
    return text


def python_env() -> dict[str, str]:
    """The interpreter's environment a container image would provide (PATH, PYTHONPATH)."""
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "VIRTUAL_ENV")
    return {k: os.environ[k] for k in keep if k in os.environ}


# -- long-running pods (Deployments): the MLflow server and the serving replicas -------------

PROGRAMS = {"finmlops": [sys.executable, "-m", "finmlops"],
            "mlflow": [sys.executable, "-m", "mlflow"]}
"""The images' programs, as this machine runs them."""


@dataclass
class Pod:
    """One container of a rendered Deployment, running as a local process."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    home: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_pod(cluster: Cluster, deployment: dict[str, Any], name: str, port: int) -> Pod:
    """The Deployment's (single) container as a process: its rendered command, args and env,
    its volumes as local directories, its container port published on ``port`` of loopback
    (a pod has its own address; here every pod shares one, so each gets its own port)."""
    spec = deployment["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    (container_port,) = [p["containerPort"] for p in c["ports"]]
    root = cluster.root / "pods" / name
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for m in c.get("volumeMounts", []):
        path = root / "volumes" / m["name"]
        path.mkdir(parents=True, exist_ok=True)
        vol = volumes[m["name"]]
        if "configMap" in vol:
            for key, text in cluster.config_maps[vol["configMap"]["name"]].items():
                (path / key).write_text(text, encoding="utf-8")
        elif "emptyDir" not in vol:
            raise Unsupported(f"volume {vol}")
        mounts[m["mountPath"]] = path
    env: dict[str, str] = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = _remap(e["value"], mounts)
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = cluster.secrets[(ref["name"], ref["key"])]
    # The pod's listening port, mapped (and bound to loopback, not 0.0.0.0).
    for key in ("FINMLOPS_SERVE__PORT",):
        if env.get(key) == str(container_port):
            env[key] = str(port)
    if env.get("FINMLOPS_SERVE__HOST") == "0.0.0.0":
        env["FINMLOPS_SERVE__HOST"] = "127.0.0.1"
    argv = [*c["command"], *c.get("args", [])]
    argv = [_remap(_expand(a, env), mounts) for a in argv]
    for i, a in enumerate(argv[:-1]):
        if a == "--port" and argv[i + 1] == str(container_port):
            argv[i + 1] = str(port)
        if a == "--host" and argv[i + 1] == "0.0.0.0":
            argv[i + 1] = "127.0.0.1"
    program = PROGRAMS[argv[0]]
    log = root / "pod.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen([*program, *argv[1:]], env={**cluster.extra_env, **env},
                                cwd=mounts.get("/tmp", root), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    return Pod(name, proc, f"http://127.0.0.1:{port}", mounts.get("/data", root), log)


def wait_http(url: str, pod: Pod, timeout: float = 180.0) -> None:
    """Until ``url`` answers 200 (the pod's readiness), or the process dies."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pod.proc.poll() is not None:
            raise AssertionError(f"{pod.name} exited {pod.proc.returncode}:\n"
                                 f"{pod.output()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{pod.name} not ready at {url} after {timeout:.0f} s:\n"
                         f"{pod.output()[-3000:]}")
