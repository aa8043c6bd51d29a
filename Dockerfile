#
# The platform's images, one per role, from one file (docs/deploy.md):
#
#   docker build --target dagster -t crypto-data-platform:0.1.0 .           # webserver, daemon, user code, runs
#   docker build --target gateway -t crypto-data-platform-gateway:0.1.0 .   # the API gateway
#
# The gateway image holds only what `api.app` imports ([tool.crypto-data-platform.images] in
# pyproject.toml): no Dagster, torch or transformers. Build arguments:
#   BASE_IMAGE        any Debian-based image with Python 3.11 and its venv module
#                     (default python:3.11-slim-bookworm; a locally built one where no registry is
#                     reachable, as in the project's cluster test)
#   TORCH_VARIANT     cpu (default) or any variant PyTorch publishes, e.g. cu128 for the GPU image
#   TORCH_INDEX_URL   the extra index torch comes from (PyPI stays the index for everything else);
#                     empty: torch from PyPI or from the wheels in deploy/image/wheels/ alone
#   SENTIMENT_MODEL_ID a Hugging Face model baked into /models/sentiment
#
# Dependencies come from the project's own pins: the [project.dependencies] of pyproject.toml
# (and constraints.txt when the repository has one), exactly what CI installs. No `# syntax=`
# line: the classic builder and BuildKit both build this file without fetching a frontend.

ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------
# base: the Python image with the platform's user and environment, under every other stage.
# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base

ARG APP_UID=10001

SHELL ["/bin/sh", "-eu", "-c"]

RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /opt/dagster --shell /usr/sbin/nologin app \
    && mkdir -p /opt/dagster/dagster_home /opt/dagster/app /opt/dagster/.crypto \
    && chown -R "${APP_UID}:${APP_UID}" /opt/dagster

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    CRYPTO_HOME=/opt/dagster/.crypto

# ---------------------------------------------------------------------------------------------
# build-base: an empty virtual environment, the project's metadata and the image helpers.
# ---------------------------------------------------------------------------------------------
FROM base AS build-base

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv "$VIRTUAL_ENV"

WORKDIR /src
COPY pyproject.toml constraints.tx[t] ./
COPY deploy/image/requirements.py ./deploy/image/
RUN touch constraints.txt

# ---------------------------------------------------------------------------------------------
# gateway-build: the gateway's dependencies and the project, pruned.
# ---------------------------------------------------------------------------------------------
FROM build-base AS gateway-build

RUN python3 deploy/image/requirements.py gateway > /tmp/requirements.txt \
    && pip install --no-cache-dir --constraint constraints.txt --requirement /tmp/requirements.txt \
    && pip install --no-cache-dir dumb-init==1.2.5.post1

COPY README.m[d] ./
COPY crypto_assets ./crypto_assets
COPY resources ./resources
COPY sensors ./sensors
COPY api ./api
COPY cli ./cli
COPY deploy/image/prune-venv.sh ./deploy/image/
# --no-deps: the gateway takes a subset of the project's dependencies, so `pip check` would
# name the rest; importing the app is the check instead.
RUN pip install --no-cache-dir --no-deps . \
    && deploy/image/prune-venv.sh "$VIRTUAL_ENV" \
    && python3 -P -c 'import api.app'

# ---------------------------------------------------------------------------------------------
# builder: the Dagster side's dependencies (torch first) and the project, pruned.
# ---------------------------------------------------------------------------------------------
FROM build-base AS builder

# torch from PyTorch's index for the variant (CPU by default: about 200 MB instead of several GB
# of CUDA libraries), or from deploy/image/wheels/; PyTorch's builds carry a local version
# (2.13.0+cpu) that `torch==2.13.0` matches and ranks above PyPI's. TORCH_VERSION must stay the
# torch pin of pyproject.toml (a test checks it).
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
COPY deploy/image/wheels ./deploy/image/wheels
# Pinned (torch==${TORCH_VERSION}); hadolint cannot read the pin through the variable.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --find-links deploy/image/wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} "torch==${TORCH_VERSION}"

# The pinned dependencies in their own layer, so a source change does not reinstall them.
RUN python3 deploy/image/requirements.py dagster > /tmp/requirements.txt \
    && pip install --no-cache-dir --constraint constraints.txt --requirement /tmp/requirements.txt \
    && pip install --no-cache-dir dumb-init==1.2.5.post1

# The project itself; its dependencies are already in place.
COPY README.m[d] ./
COPY crypto_assets ./crypto_assets
COPY resources ./resources
COPY sensors ./sensors
COPY api ./api
COPY cli ./cli
COPY deploy/image/prune-venv.sh ./deploy/image/
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && deploy/image/prune-venv.sh "$VIRTUAL_ENV" \
    && python3 -P -c 'import crypto_assets.definitions, transformers, torch'

# ---------------------------------------------------------------------------------------------
# model: the sentiment model, baked in only when SENTIMENT_MODEL_ID names one (a Hugging Face
# hub id, fetched at build time). Otherwise /models stays empty, and a model can be mounted
# there from a volume at run time (the chart's sentimentModel.volume).
# ---------------------------------------------------------------------------------------------
FROM builder AS model
ARG SENTIMENT_MODEL_ID=""
ARG SENTIMENT_MODEL_REVISION=main
RUN mkdir -p /models/sentiment \
    && if [ -n "${SENTIMENT_MODEL_ID}" ]; then \
         python3 -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir='/models/sentiment')" \
           "${SENTIMENT_MODEL_ID}" "${SENTIMENT_MODEL_REVISION}" \
         && rm -rf /models/sentiment/.cache; \
       fi

# ---------------------------------------------------------------------------------------------
# gateway: the API gateway alone (`uvicorn api.app:app`).
# ---------------------------------------------------------------------------------------------
FROM base AS gateway

ARG APP_UID=10001

LABEL org.opencontainers.image.title="crypto-data-platform-gateway" \
      org.opencontainers.image.description="The read-only FastAPI gateway of the crypto data platform" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=gateway-build /opt/venv /opt/venv

WORKDIR /opt/dagster/app
USER ${APP_UID}:${APP_UID}
EXPOSE 8000
ENTRYPOINT ["dumb-init", "--"]
CMD ["uvicorn", "api.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-server-header"]

# ---------------------------------------------------------------------------------------------
# dagster (the default target): the webserver, the daemon, the user-code server and every
# run's Kubernetes Job; the chart picks the command.
# ---------------------------------------------------------------------------------------------
FROM base AS dagster

ARG APP_UID=10001
ARG SENTIMENT_MODEL_ID=""

LABEL org.opencontainers.image.title="crypto-data-platform" \
      org.opencontainers.image.description="Dagster crypto data platform: webserver, daemon, user code and runs" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /opt/venv /opt/venv
COPY --from=model --chown=${APP_UID}:${APP_UID} /models /models

# CRYPTO_SENTIMENT_MODEL: the baked model when there is one, else the lexicon scorer; the
# chart (or docker run -e) overrides it, e.g. with a model mounted under /models.
ENV CRYPTO_SENTIMENT_MODEL=${SENTIMENT_MODEL_ID:+/models/sentiment}
ENV CRYPTO_SENTIMENT_MODEL=${CRYPTO_SENTIMENT_MODEL:-lexicon} \
    HF_HOME=/tmp/huggingface

WORKDIR /opt/dagster/app
USER ${APP_UID}:${APP_UID}

# 3000 webserver, 4000 user-code gRPC server.
EXPOSE 3000 4000

ENTRYPOINT ["dumb-init", "--"]
CMD ["dagster", "api", "grpc", "-m", "crypto_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
