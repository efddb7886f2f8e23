"""Several ``finmlops`` serving processes and Debian's nginx as a round-robin balancer in
front of them, on loopback: what a Deployment behind a Service looks like, on one machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from serving_support import wait_ready

from postgres_support import free_port

NGINX_PACKAGE = "nginx"
EXP = "/v2/models/direction-ab/infer"


def nginx_skip_reason() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        return f"nginx not installed (Debian package {NGINX_PACKAGE})"
    return None


def _nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Replica:
    """One ``python -m finmlops.serving`` process (its own home, the shared ledger)."""

    name: str
    home: Path
    proc: subprocess.Popen[str]
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_replica(name: str, root: Path, model_dir: Path, ledger_url: str,
                  config: dict[str, Any] | None = None, workers: int = 1,
                  env_extra: dict[str, str] | None = None, port: int = 0) -> Replica:
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "finmlops.yaml"
    tree: dict[str, Any] = {"home": str(home), "ledger": {"url": ledger_url}}
    for key, value in (config or {}).items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg.write_text(yaml.safe_dump(tree), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    env.update(env_extra or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmlops.serving", "--config", str(cfg), "--port", str(port),
         "--model-dir", str(model_dir), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on http://" not in line:
        proc.kill()
        raise AssertionError(line + (proc.stderr.read() if proc.stderr else ""))
    url = line.rsplit(" on ", 1)[1].split()[0].strip()
    wait_ready(url, timeout=60)
    return Replica(name, home, proc, url)


@dataclass
class Balancer:
    """nginx round-robin over the replicas (no retries of POSTs on another replica: a
    request a replica did not answer is an error the client sees, as with a Service)."""

    root: Path
    proc: subprocess.Popen[bytes]
    url: str
    log: Path = field(default_factory=Path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_balancer(root: Path, replicas: list[Replica]) -> Balancer:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstream = "\n".join(f"    server 127.0.0.1:{r.port} max_fails=0;" for r in replicas)
    conf = root / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream finmlops {{
{upstream}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://finmlops;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_read_timeout 30s;
    }}
  }}
}}
""", encoding="utf-8")
    proc = subprocess.Popen([_nginx(), "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"nginx did not start: {err}")
        time.sleep(0.05)
    return Balancer(root, proc, url, root / "error.log")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
