# syntax=docker/dockerfile:1.7
# finmlops images. Targets:
#   serving  - finmlops[serve]: ONNX Runtime, no torch: `finmlops serve` on :8080
#   training - finmlops[train], torch's CPU build: every `finmlops <stage>` of the workflows
#   mlflow   - the MLflow tracking server with the PostgreSQL driver and boto3
# Build (BuildKit):  docker build --target serving  -t ghcr.io/finmlops/finmlops:0.1.0 .
#                    docker build --target training -t ghcr.io/finmlops/finmlops-train:0.1.0 .
#                    docker build --target mlflow   -t ghcr.io/finmlops/finmlops-mlflow:0.1.0 .
# Every final stage runs as the numeric non-root user 10001 and writes only to /data
# (FINMLOPS_HOME) and /tmp, so it runs with a read-only root filesystem (emptyDirs on both).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: compilers live here only; everything leaves this stage as wheels -------------
# Every install takes its versions from requirements.lock (`make lock`), used as constraints:
# each image gets exactly the extra it needs, at the versions the test suite ran with.
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
# serving: finmlops[serve] (ONNX Runtime, no torch, no MLflow server); training: finmlops[train]
# with torch's CPU build (2.13.0+cpu in the lock) from PyTorch's CPU wheel index.
RUN python -m pip wheel --wheel-dir /wheels/serving -c requirements.lock ".[serve]" \
 && python -m pip wheel --wheel-dir /wheels/training -c requirements.lock \
        --extra-index-url https://download.pytorch.org/whl/cpu ".[train]" \
 && python -m pip wheel --wheel-dir /wheels/mlflow -c requirements.lock \
        -r src/finmlops/deploy/docker/requirements-mlflow.txt

# ---- runtime: no compilers, a numeric non-root user, a venv on PATH ----------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    FINMLOPS_HOME=/data \
    HOME=/data
RUN groupadd --system --gid 10001 finmlops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin finmlops \
 && mkdir -p /data && chown 10001:10001 /data \
 && python -m venv /opt/venv
WORKDIR /data

# ---- serving: finmlops[serve] from the lock (no torch) ------------------------------------
FROM runtime AS serving
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels/serving "finmlops[serve]" \
 && python -c "import importlib.util as u; assert u.find_spec('torch') is None" \
 && finmlops --version
ENV FINMLOPS_SERVE__HOST=0.0.0.0 FINMLOPS_SERVE__PORT=8080
USER 10001:10001
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK and uses the Deployment's probes on the same endpoints.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2)"]
ENTRYPOINT ["finmlops"]
CMD ["serve"]

# ---- training: finmlops[train] from the lock, torch's CPU build -------------------------
FROM runtime AS training
# git: the daily job hands a promotion to the config repository as a commit (deploy.gitops).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels/training "finmlops[train]" \
 && finmlops --version
USER 10001:10001
EXPOSE 8080
# Batch steps: Argo tracks the container's exit code; there is nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["finmlops"]
CMD ["--help"]

# ---- mlflow: tracking server (PostgreSQL backend store, S3/MinIO artifacts) --------------
FROM runtime AS mlflow
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels/mlflow /wheels/mlflow/*.whl
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:5000/health', timeout=2)"]
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]
