#!/usr/bin/env bash
# Bring up (idempotently) the single-node Kubernetes 1.20 test cluster on this machine: a private
# dockerd (socket $CLUSTER_STATE/docker.sock), the base images, the PKI, etcd, kube-apiserver on
# docker0 (172.17.0.1:6443), controller-manager, scheduler, the cluster DNS (172.17.0.1:53),
# kubelet (dockershim, no CNI: pods get docker0 addresses), kube-proxy (iptables) and a private
# MariaDB on 172.17.0.1:3307; then write $CLUSTER_STATE/env and run smoke.sh
# (CLUSTER_SMOKE=0 skips it). What already runs is left alone. Undo with down.sh.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $EUID -eq 0 ]] || die "run as root"
lock
T0=$SECONDS
"$CLUSTER_DIR/packages.sh" >/dev/null
"$CLUSTER_DIR/build-kubernetes.sh" >/dev/null
mkdir -p "$STATE" "$LOGS" "$RUN" "$CONF" "$STATE/bin"
# dockerd runs the wrapper from the state dir: independent of where this checkout lives.
cmp -s "$CLUSTER_DIR/runc-no-oom-adj" "$STATE/bin/runc-no-oom-adj" ||
  install -m 0755 "$CLUSTER_DIR/runc-no-oom-adj" "$STATE/bin/runc-no-oom-adj"

# -- kernel settings: routing for the bridge, bridged pod traffic through iptables (kube-proxy).
modprobe br_netfilter 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

# -- dockerd, private socket, runtime wrapper that drops negative oom_score_adj.
if write_if_changed "$CONF/docker-daemon.json" <<EOF
{
  "hosts": ["$DOCKER_HOST"],
  "data-root": "$STATE/docker",
  "exec-root": "$STATE/docker-exec",
  "pidfile": "$RUN/dockerd.self.pid",
  "storage-driver": "overlay2",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "bip": "$BRIDGE_IP/16",
  "oom-score-adjust": 0,
  "default-runtime": "cdp-runc",
  "runtimes": {"cdp-runc": {"path": "$STATE/bin/runc-no-oom-adj"}},
  "log-driver": "json-file",
  "log-opts": {"max-size": "50m", "max-file": "2"}
}
EOF
then
  # A running dockerd rereads runtimes on SIGHUP; other changes need down.sh first.
  if pid_alive dockerd; then kill -HUP "$(cat "$RUN/dockerd.pid")"; log "dockerd: new config, reloaded (SIGHUP)"; fi
fi
start_bg dockerd dockerd --config-file "$CONF/docker-daemon.json"
wait_for 60 dockerd docker version
"$CLUSTER_DIR/base-images.sh"

# -- certificates and kubeconfigs.
"$CLUSTER_DIR/certs.sh"

# -- etcd on loopback.
start_bg etcd etcd --name crypto --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "crypto=http://127.0.0.1:$((ETCD_PORT + 1))"

# -- MariaDB (private datadir, its own socket; the system one on :3306 is not touched).
MYSQL_DIR="$STATE/mariadb"
MYSQL_SOCKET="$MYSQL_DIR/mysqld.sock"
if [[ ! -d "$MYSQL_DIR/data/mysql" ]]; then
  mkdir -p "$MYSQL_DIR"
  mariadb-install-db --no-defaults --user=root --datadir="$MYSQL_DIR/data" --skip-test-db \
    --auth-root-authentication-method=socket >"$LOGS/mariadb-install-db.log" 2>&1 ||
    { tail -20 "$LOGS/mariadb-install-db.log"; die "mariadb-install-db failed"; }
fi
start_bg mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$MYSQL_DIR/data" \
  --socket="$MYSQL_SOCKET" --pid-file="$RUN/mariadbd.self.pid" --bind-address="$BRIDGE_IP" \
  --port="$MYSQL_PORT" --skip-name-resolve --skip-log-bin --character-set-server=utf8mb4 \
  --collation-server=utf8mb4_general_ci --innodb-buffer-pool-size=128M --max-connections=500 \
  --log-error="$LOGS/mariadbd.err"

wait_for 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# -- control plane. TTLAfterFinished is alpha (off) in 1.20: on, so that the runs' Jobs go after
# the chart's ttlSecondsAfterFinished as on a current cluster.
T_APISTART=$SECONDS
start_bg kube-apiserver "$BIN/kube-apiserver" \
  --advertise-address="$BRIDGE_IP" --bind-address="$BRIDGE_IP" --secure-port=6443 --insecure-port=0 \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC --allow-privileged=true \
  --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota \
  --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --cert-dir="$STATE/apiserver-certs" --profiling=false --v=1 \
  --feature-gates=TTLAfterFinished=true
wait_for 90 "apiserver /readyz" kc get --raw /readyz
T_API=$((SECONDS - T_APISTART))
log "apiserver ready ${T_API}s after its start"

start_bg kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$CONF/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CONF/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --port=0 --cert-dir="$STATE/controller-manager-certs" --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --v=1 \
  --feature-gates=TTLAfterFinished=true
start_bg kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$CONF/scheduler.kubeconfig" --authentication-kubeconfig="$CONF/scheduler.kubeconfig" \
  --authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --port=0 --leader-elect=false --v=1

# -- cluster DNS: a venv with dnslib (stdlib HTTPS for the apiserver), Debian's python3.
VENV="$STATE/venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import dnslib' 2>/dev/null; then
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'dnslib==0.9.26' >"$LOGS/venv.log" 2>&1 || { cat "$LOGS/venv.log"; die "pip install dnslib failed"; }
fi
start_bg cluster-dns "$VENV/bin/python" "$CLUSTER_DIR/cluster_dns.py" --listen "$BRIDGE_IP" \
  --server "https://$BRIDGE_IP:6443" --ca "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key"

# -- kubelet (dockershim on the private dockerd) and kube-proxy.
if write_if_changed "$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
clusterDNS: [$BRIDGE_IP]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
# A busy, shared disk must not evict the test's pods nor collect its images.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Post status every 4 s (default 10 s): a fresh node turns Ready ~10 s sooner.
nodeStatusUpdateFrequency: 4s
serializeImagePulls: false
maxPods: 110
EOF
then stop_bg kubelet; fi  # restarted below with the new config; its pods keep running
T_KUBELETSTART=$SECONDS
KUBELET_SINCE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
pid_alive kubelet && KUBELET_SINCE=0  # already running: its Ready condition is current
start_bg kubelet "$BIN/kubelet" --config="$CONF/kubelet.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
  --container-runtime=docker --docker-endpoint="$DOCKER_HOST" \
  --container-runtime-endpoint="unix://$RUN/dockershim.sock" \
  --experimental-dockershim-root-directory="$STATE/dockershim" \
  --pod-infra-container-image=local/pause:3.2 --hostname-override="$NODE_NAME" --node-ip="$BRIDGE_IP" \
  --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet-certs" \
  --volume-plugin-dir="$STATE/kubelet-plugins" --oom-score-adj=0 --v=1

if write_if_changed "$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CONF/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
then stop_bg kube-proxy; fi
start_bg kube-proxy "$BIN/kube-proxy" --config="$CONF/kube-proxy.yaml" --v=1

# Ready, and reported by this kubelet: after a down/up the Node keeps its old Ready condition
# until the lease expires (40 s), so its heartbeat must be newer than kubelet's start.
node_ready() {
  local ready beat
  read -r ready beat < <(kc get node "$NODE_NAME" \
    -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}')
  # shellcheck disable=SC2071  # RFC 3339 timestamps of one format: string order is time order
  [[ "$ready" == True && ! "$beat" < "$KUBELET_SINCE" ]]
}
wait_for 120 "node $NODE_NAME Ready" node_ready
T_NODE=$((SECONDS - T_KUBELETSTART))
log "node Ready ${T_NODE}s after kubelet's start"

# -- MariaDB user for the platform's pods.
wait_for 60 mariadb mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" ping
mariadb --no-defaults --socket="$MYSQL_SOCKET" -u root <<EOF
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
ALTER USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'%' WITH GRANT OPTION;
EOF

# -- connection facts for tests and the other scripts.
{
  echo "# Written by testkit/cluster/up.sh: source it."
  for kv in "CLUSTER_STATE=$STATE" "CLUSTER_CACHE=$CACHE" "KUBECONFIG=$KUBECONFIG_FILE" \
    "DOCKER_HOST=$DOCKER_HOST" "KUBECTL=$KUBECTL" "CLUSTER_NODE_NAME=$NODE_NAME" \
    "CLUSTER_APISERVER=https://$BRIDGE_IP:6443" "CLUSTER_DNS=$BRIDGE_IP" \
    "CLUSTER_MYSQL_HOST=$BRIDGE_IP" "CLUSTER_MYSQL_PORT=$MYSQL_PORT" "CLUSTER_MYSQL_USER=$MYSQL_USER" \
    "CLUSTER_MYSQL_PASSWORD=$MYSQL_PASSWORD" "CLUSTER_MYSQL_SOCKET=$MYSQL_SOCKET" \
    "CLUSTER_PYTHON_IMAGE=${CLUSTER_PYTHON_IMAGE:-cdp-local/python:3.11-bookworm}" \
    "CLUSTER_BUSYBOX_IMAGE=local/busybox:latest" "CLUSTER_WAIT_SERVICE=$CLUSTER_DIR/wait-service.sh"; do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
} >"$STATE/env"
log "cluster up in $((SECONDS - T0))s (apiserver ready ${T_API}s after its start, node Ready ${T_NODE}s after kubelet's); env: $STATE/env"

if [[ "${CLUSTER_SMOKE:-1}" != 0 ]]; then "$CLUSTER_DIR/smoke.sh"; fi
for c in "${COMPONENTS[@]}"; do pid_alive "$c" || die "$c is not running: see $LOGS/$c.log"; done
