#!/usr/bin/env bash
# The real-cluster test stage, run by .ci/run after the suite: Debian's packages, Kubernetes 1.20
# built from Debian's source (cached in $CLUSTER_CACHE), the single-node cluster (up.sh), the
# images from the Dockerfile (build-images.sh), then tests/cluster/ against Helm releases of the
# chart. The cluster is taken down at the end (its caches stay for the next run). Needs the
# project's .venv (scripts/install.sh dev). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=testkit/cluster
began=$SECONDS
step() { printf '[cluster stage %4ss] %s\n' "$((SECONDS - began))" "$*"; }

step "packages";            $HERE/packages.sh
step "kubernetes binaries"; $HERE/build-kubernetes.sh
step "cluster up";          $HERE/up.sh
trap '$HERE/down.sh >/dev/null 2>&1 || true' EXIT
step "images";              $HERE/build-images.sh
step "helm";                $HERE/helm.sh >/dev/null
step "tests"
status=0
.venv/bin/python -m pytest -m cluster tests/cluster -p no:cacheprovider -q "$@" || status=$?
step "done (pytest exit $status)"
exit $status
