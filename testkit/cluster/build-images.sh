#!/usr/bin/env bash
# Build the project's two images from the Dockerfile on the test cluster's dockerd, as a user
# would, with what this machine can reach: BASE_IMAGE is the locally built Debian Python image
# (up.sh), torch comes from the wheel on this machine's disk (pip's find-links directory) through
# deploy/image/wheels/, everything else from PyPI. Tags: crypto-data-platform[-gateway]:$TAG and
# :$TAG-2 (the "new release" the upgrade test rolls to). Prints each image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source "${CLUSTER_STATE:-/var/lib/crypto-cluster}/env"
TAG="${CLUSTER_IMAGE_TAG:-ci}"
TORCH_VERSION="$(python3 deploy/image/requirements.py dagster | sed -n 's/^torch==//p')"

torch_index=""
wheel=""
for dir in $(python3 -m pip config get global.find-links 2>/dev/null || true); do
  for candidate in "$dir"/torch-"$TORCH_VERSION"+cpu-*cp311*.whl; do
    [ -f "$candidate" ] && [ -z "$wheel" ] && wheel="$candidate"
  done
done
if [ -n "$wheel" ]; then
  cp -u "$wheel" deploy/image/wheels/
else
  torch_index="https://download.pytorch.org/whl/cpu"   # no wheel on disk: PyTorch's CPU index
fi

export DOCKER_BUILDKIT=0
build() {  # target image
  local began=$SECONDS log="$CLUSTER_STATE/logs/build-$1.log"
  if ! docker build --target "$1" --build-arg "BASE_IMAGE=$CLUSTER_PYTHON_IMAGE" \
      --build-arg "TORCH_INDEX_URL=$torch_index" -t "$2:$TAG" . >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "docker build --target $1 failed (whole log: $log)" >&2
    exit 1
  fi
  docker tag "$2:$TAG" "$2:$TAG-2"
  printf '%s:%s built in %ss, %s MB\n' "$2" "$TAG" "$((SECONDS - began))" \
    "$(( $(docker image inspect --format '{{.Size}}' "$2:$TAG") / 1000000 ))"
}
build gateway crypto-data-platform-gateway
build dagster crypto-data-platform
