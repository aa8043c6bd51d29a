#!/usr/bin/env bash
# Generate the test cluster's PKI with openssl under $CLUSTER_STATE/pki (kept when present): a CA,
# the apiserver's serving certificate, client certificates for admin (system:masters), the
# controller-manager, the scheduler, kube-proxy and the kubelet (system:node:NAME), the
# kubelet's serving certificate, the service-account key pair; and a kubeconfig for each client
# (certificates embedded), the admin one at $CLUSTER_STATE/kubeconfig.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mkdir -p "$PKI" "$CONF"
umask 077
cd "$PKI"

if [[ ! -s ca.crt ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=crypto-cluster-ca" 2>/dev/null
fi

# cert NAME SUBJECT EXTENSIONS: a key and a CA-signed certificate, unless NAME.crt exists.
cert() {
  local name="$1" subj="$2" ext="$3"
  [[ -s "$name.crt" ]] && return 0
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$ext" >"$name.ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
SANS="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
SANS+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
SANS+=",IP:$BRIDGE_IP,IP:$SERVICE_IP,IP:127.0.0.1"
cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=$SANS"
cert admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
cert kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
cert kubelet-serving "/CN=$NODE_NAME" "extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,IP:$BRIDGE_IP,IP:127.0.0.1"
if [[ ! -s sa.key ]]; then
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi

# kubeconfig FILE CERTNAME USER: a kubeconfig for the apiserver on docker0, certificates inline.
kubeconfig() {
  local file="$1" name="$2" user="$3"
  [[ -s "$file" ]] && return 0
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: crypto-cluster
  cluster:
    server: https://$BRIDGE_IP:6443
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$name.crt")
    client-key-data: $(base64 -w0 "$name.key")
contexts:
- name: crypto-cluster
  context: {cluster: crypto-cluster, user: $user}
current-context: crypto-cluster
EOF
}
kubeconfig "$KUBECONFIG_FILE" admin admin
kubeconfig "$CONF/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
kubeconfig "$CONF/scheduler.kubeconfig" scheduler system:kube-scheduler
kubeconfig "$CONF/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
kubeconfig "$CONF/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
