# Shared settings and helpers of the single-node test cluster's scripts (sourced, not run).
# Paths: state under $CLUSTER_STATE, cached binaries and base-image tarballs under $CLUSTER_CACHE.
# shellcheck shell=bash disable=SC2034  # the settings are used by the scripts that source this

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${CLUSTER_STATE:-/var/lib/crypto-cluster}"
CACHE="${CLUSTER_CACHE:-/var/cache/crypto-cluster}"
BIN="$CACHE/k8s-bin"
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
CONF="$STATE/conf"
NODE_NAME="${CLUSTER_NODE_NAME:-crypto-node}"
BRIDGE_IP=172.17.0.1            # docker0: what pods reach the host (apiserver, DNS, MariaDB) on
SERVICE_CIDR=10.0.0.0/24
SERVICE_IP=10.0.0.1             # the `kubernetes` Service: first address of SERVICE_CIDR
POD_CIDR=172.17.0.0/16          # docker0's subnet: pods get their addresses from dockerd
ETCD_PORT=12379                 # not 2379, so a system etcd can run beside it
MYSQL_PORT=3307                 # the system MariaDB keeps 127.0.0.1:3306
MYSQL_USER=crypto
MYSQL_PASSWORD=crypto
KUBECONFIG_FILE="$STATE/kubeconfig"
DOCKER_SOCK="$STATE/docker.sock"
KUBECTL="$BIN/kubectl"
export DOCKER_HOST="unix://$DOCKER_SOCK"

# lock: one up.sh/down.sh at a time (fd 9 stays open, and locked, until the script exits).
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -n 9 && return 0
  log "waiting for another up.sh/down.sh ($STATE/.lock)"
  flock -w 300 9 || die "another up.sh/down.sh holds $STATE/.lock"
}

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# kc ARGS...: kubectl as the cluster admin.
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# wait_for SECONDS WHAT CMD...: run CMD every 0.5 s until it succeeds; die after SECONDS.
wait_for() {
  local limit="$1" what="$2" start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then die "timed out after ${limit}s waiting for $what"; fi
    sleep 0.5
  done
}

# running PID: the process exists and is not a zombie (PID 1 here reaps orphans only every ~2 s).
running() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# pid_alive NAME: the process recorded in $RUN/NAME.pid is running.
pid_alive() {
  local f="$RUN/$1.pid"
  [[ -s "$f" ]] && running "$(cat "$f")"
}

# start_bg NAME CMD...: start CMD detached (own session), log in $LOGS/NAME.log, pid in
# $RUN/NAME.pid; nothing when it already runs.
start_bg() {
  local name="$1"
  shift
  if pid_alive "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  mkdir -p "$LOGS" "$RUN"
  # Logs append across restarts; keep one older generation past 50 MB.
  if [[ -f "$LOGS/$name.log" ]] && (($(stat -c %s "$LOGS/$name.log") > 50000000)); then
    mv -f "$LOGS/$name.log" "$LOGS/$name.log.old"
  fi
  # 9>&-: the daemons must not inherit (and hold forever) the lock of up.sh.
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  echo $! >"$RUN/$name.pid"
  log "$name started (pid $!, log $LOGS/$name.log)"
}

# stop_bg NAME [SECONDS]: TERM the process of $RUN/NAME.pid, KILL it after SECONDS (default 15).
stop_bg() {
  local name="$1" limit="${2:-15}" pid i
  [[ -s "$RUN/$name.pid" ]] || return 0
  pid="$(cat "$RUN/$name.pid")"
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < limit * 10; i++)); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      log "$name (pid $pid) ignored TERM for ${limit}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
    fi
    log "$name stopped"
  fi
  rm -f "$RUN/$name.pid"
}

# write_if_changed FILE: write stdin to FILE only when it differs (status 0 when it was written, 1
# when it was already so). kube-proxy exits ("content of the proxy server's configuration file
# was updated") on any write to its --config file.
write_if_changed() {
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$1"
}

COMPONENTS=(dockerd etcd mariadb kube-apiserver kube-controller-manager kube-scheduler cluster-dns kubelet kube-proxy)
