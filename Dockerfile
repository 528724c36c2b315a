# syntax=docker/dockerfile:1
# The sweeps image: the `sweeps` command (workers, `sweeps create`) and, with the same packages,
# the MLflow tracking server of docker-compose.yml. One image for both keeps MLflow's client and
# server versions equal.
#
#   docker build -t sweeps:local .                                   # PyTorch CPU build (default)
#   docker build -t sweeps:local \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .   # a CUDA build
#
# Stages: `base` (everything), `dashboard` (+ optuna-dashboard, for the compose profile
# `dashboard`), and the default last stage `app`, which is `base` unchanged.

FROM python:3.11-slim AS base

# Where PyTorch comes from. A plain `torch` requirement from PyPI is a multi-GB CUDA build on
# Linux; the CPU index gives the small CPU wheel. Pick a CUDA build with its index
# (https://download.pytorch.org/whl/cu126, ...), pin a version with TORCH_SPEC (torch==2.5.1).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# PyTorch first, on its own layer: the largest download, and it changes least often.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

WORKDIR /src

# The project's dependencies, read from pyproject.toml, on a layer of their own: editing the code
# does not reinstall mlflow, optuna, ... (torch is already satisfied and is kept).
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself (console script `sweeps`, configs shipped as sweeps.conf).
COPY sweeps/ sweeps/
COPY objectives/ objectives/
COPY conf/ conf/
RUN pip install --no-deps . \
 && rm -rf /src/build /src/*.egg-info \
 && sweeps --help > /dev/null

# Run as an unprivileged user. /mlartifacts exists (owned by that user) so that a named volume
# mounted there starts with that ownership and the MLflow server can write artifacts to it.
RUN useradd --create-home --uid 10001 --user-group sweeps \
 && mkdir -p /work /mlartifacts \
 && chown sweeps:sweeps /work /mlartifacts
USER sweeps
WORKDIR /work

ENTRYPOINT ["sweeps"]
CMD ["--help"]


# optuna-dashboard next to the project's own optuna (compose profile `dashboard`).
FROM base AS dashboard
USER root
RUN pip install "optuna-dashboard>=0.15"
USER sweeps
ENTRYPOINT ["optuna-dashboard"]
CMD ["--help"]


# Default target: the sweeps image.
FROM base AS app
