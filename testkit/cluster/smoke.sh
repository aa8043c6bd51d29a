#!/usr/bin/env bash
# Smoke check of the running test cluster (namespace cluster-smoke): a local/busybox Pod
# (imagePullPolicy Never) runs to completion; a busybox httpd behind a Service is reached from
# another pod by its short and full DNS names, the `kubernetes` Service answers with the pod's
# service-account token, MariaDB answers on docker0, the ClusterIP answers from the host too. With CLUSTER_SMOKE_PIP=1 also a
# pod from the python base image makes a venv and pip-installs `six` from PyPI.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NS=cluster-smoke
T0=$SECONDS
kc get namespace "$NS" >/dev/null 2>&1 || kc create namespace "$NS" >/dev/null
kc -n "$NS" delete pod,service -l smoke=1 --grace-period=0 --force --wait=true >/dev/null 2>&1 || true
wait_for 60 "service account $NS/default" kc -n "$NS" get serviceaccount default

# phase POD: the pod's phase.
phase() { kc -n "$NS" get pod "$1" -o jsonpath='{.status.phase}'; }
# wait_phase POD PHASE SECONDS: wait for PHASE; show the pod and its log and fail otherwise.
wait_phase() {
  local start=$SECONDS
  until [[ "$(phase "$1")" == "$2" ]]; do
    if [[ "$(phase "$1")" == Failed ]] || ((SECONDS - start >= $3)); then
      kc -n "$NS" describe pod "$1" | tail -20 >&2 || true
      kc -n "$NS" logs "$1" >&2 || true
      die "pod $1 did not reach $2"
    fi
    sleep 0.3
  done
}

pod() { # pod NAME IMAGE SCRIPT [EXTRA_SPEC_YAML]: a pod running `sh -c SCRIPT`.
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {smoke: "1", app: $1}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $2
    imagePullPolicy: Never
    command: [sh, -c, $(printf '%s' "$3" | jq -Rs .)]
${4:-}
---
EOF
}

t=$SECONDS
pod smoke-run local/busybox:latest 'echo smoke-ok' | kc -n "$NS" apply -f - >/dev/null
wait_phase smoke-run Succeeded 60
[[ "$(kc -n "$NS" logs smoke-run)" == smoke-ok ]] || die "smoke-run: unexpected log"
log "busybox pod ran to completion in $((SECONDS - t))s"

{
  pod smoke-httpd local/busybox:latest 'echo hello-from-httpd >/var/www/index.html && exec httpd -f -p 8080 -h /var/www' \
    "    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}"
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: smoke-httpd, labels: {smoke: "1"}}
spec:
  selector: {app: smoke-httpd}
  ports: [{name: http, port: 80, targetPort: 8080}]
EOF
} | kc -n "$NS" apply -f - >/dev/null
t=$SECONDS
IP="$("$CLUSTER_DIR/wait-service.sh" "$NS" smoke-httpd 90)"
log "service smoke-httpd ($IP) programmed and resolvable in $((SECONDS - t))s"
[[ "$(curl -fsS -m 5 "http://$IP/")" == hello-from-httpd ]] || die "ClusterIP $IP does not answer from the host"

t=$SECONDS
# Debian's busybox-static wget segfaults with -T (its own timeout): wrap it in `timeout`.
# shellcheck disable=SC2016  # $TOKEN expands in the pod
pod smoke-client local/busybox:latest '
set -e
timeout 10 wget -qO- http://smoke-httpd/
timeout 10 wget -qO- http://smoke-httpd.cluster-smoke.svc.cluster.local/
TOKEN=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)
timeout 10 wget -qO- --no-check-certificate --header "Authorization: Bearer $TOKEN" https://kubernetes.default.svc/api | grep -q APIVersions
echo kubernetes-ok
(timeout 3 nc '"$BRIDGE_IP $MYSQL_PORT"' </dev/null || true) | grep -q MariaDB
echo mariadb-ok' | kc -n "$NS" apply -f - >/dev/null
wait_phase smoke-client Succeeded 60
out="$(kc -n "$NS" logs smoke-client)"
[[ "$out" == $'hello-from-httpd\nhello-from-httpd\nkubernetes-ok\nmariadb-ok' ]] || die "smoke-client: unexpected output: $out"
log "pod reached smoke-httpd by DNS name, the kubernetes Service and MariaDB in $((SECONDS - t))s"

if [[ "${CLUSTER_SMOKE_PIP:-0}" == 1 ]]; then
  t=$SECONDS
  pod smoke-pip "${CLUSTER_PYTHON_IMAGE:-cdp-local/python:3.11-bookworm}" \
    'python3 -m venv /tmp/v && /tmp/v/bin/pip install -q six && /tmp/v/bin/python -c "import six; print(six.__version__)"' |
    kc -n "$NS" apply -f - >/dev/null
  wait_phase smoke-pip Succeeded 300
  log "python image: pip install six from PyPI in a pod took $((SECONDS - t))s ($(kc -n "$NS" logs smoke-pip | tail -1))"
fi

kc -n "$NS" delete pod,service -l smoke=1 --wait=false >/dev/null
log "smoke check passed in $((SECONDS - T0))s"
