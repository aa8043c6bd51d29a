# syntax=docker/dockerfile:1.7
#
# One image for every process of the platform: the Dagster webserver and daemon, the
# user-code gRPC server, each run's Kubernetes Job, and the API gateway. The Helm chart
# under deploy/helm/crypto-data-platform picks the command.
#
#   docker build -t crypto-data-platform:0.1.0 .                       # CPU torch (default)
#   docker build --build-arg TORCH_VARIANT=cu128 -t crypto-data-platform:0.1.0-cu128 .
#   docker build --build-arg SENTIMENT_MODEL_ID=ElKulako/cryptobert -t crypto-data-platform:0.1.0-bert .
#
# Dependencies come from the project's own pins: the [project.dependencies] of
# pyproject.toml (and constraints.txt when the repository has one), exactly what CI installs.
# See docs/deploy.md.

ARG PYTHON_VERSION=3.11.14
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
# builder: a virtual environment with the pinned dependencies and the project itself.
# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN python -m venv "$VIRTUAL_ENV"

# torch first, from PyTorch's own index: the CPU build by default (about 200 MB instead of
# several GB of CUDA libraries). TORCH_VARIANT=cu128 (or any variant PyTorch publishes) gives
# the GPU image; TORCH_VERSION must stay the torch pin of pyproject.toml (a test checks it).
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The pinned dependencies in their own layer, so a source change does not reinstall them.
# constraints.txt is optional (the glob copies it only where it exists).
WORKDIR /src
COPY pyproject.toml constraints.tx[t] ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && touch constraints.txt \
    && pip install --no-cache-dir --constraint constraints.txt --requirement /tmp/requirements.txt \
    && pip install --no-cache-dir dumb-init==1.2.5.post1

# The project itself; its dependencies are already in place.
COPY README.m[d] ./
COPY crypto_assets ./crypto_assets
COPY resources ./resources
COPY sensors ./sensors
COPY api ./api
COPY cli ./cli
RUN pip install --no-cache-dir --no-deps . \
    && pip check

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
         python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir='/models/sentiment')" \
           "${SENTIMENT_MODEL_ID}" "${SENTIMENT_MODEL_REVISION}" \
         && rm -rf /models/sentiment/.cache; \
       fi

# ---------------------------------------------------------------------------------------------
# runtime: the slim base, the virtual environment, a non-root user.
# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

ARG APP_UID=10001
ARG SENTIMENT_MODEL_ID=""

LABEL org.opencontainers.image.title="crypto-data-platform" \
      org.opencontainers.image.description="Dagster crypto data platform and its FastAPI gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /opt/dagster --shell /usr/sbin/nologin app \
    && mkdir -p /opt/dagster/dagster_home /opt/dagster/app /opt/dagster/.crypto \
    && chown -R "${APP_UID}:${APP_UID}" /opt/dagster

COPY --from=builder /opt/venv /opt/venv
COPY --from=model --chown=${APP_UID}:${APP_UID} /models /models

# CRYPTO_SENTIMENT_MODEL: the baked model when there is one, else the lexicon scorer; the
# chart (or docker run -e) overrides it, e.g. with a model mounted under /models.
ENV CRYPTO_SENTIMENT_MODEL=${SENTIMENT_MODEL_ID:+/models/sentiment}
ENV CRYPTO_SENTIMENT_MODEL=${CRYPTO_SENTIMENT_MODEL:-lexicon} \
    PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    CRYPTO_HOME=/opt/dagster/.crypto \
    HF_HOME=/tmp/huggingface

WORKDIR /opt/dagster/app
USER ${APP_UID}:${APP_UID}

# 3000 webserver, 4000 user-code gRPC server, 8000 API gateway.
EXPOSE 3000 4000 8000

ENTRYPOINT ["dumb-init", "--"]
CMD ["dagster", "api", "grpc", "-m", "crypto_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
