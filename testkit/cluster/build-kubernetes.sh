#!/usr/bin/env bash
# Build Kubernetes 1.20 (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl)
# and the pause binary from Debian bookworm's `kubernetes` source package, offline (GOPROXY=off,
# the vendored tree). The binaries are cached under $CLUSTER_CACHE/k8s-bin; a second call returns
# at once. Needs: golang-1.19-go, golang-github-modern-go-reflect2-dev, gcc, a deb-src line
# (added here for bookworm when missing).
set -euo pipefail
CACHE="${CLUSTER_CACHE:-/var/cache/crypto-cluster}"
BIN="$CACHE/k8s-bin"
WANT="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl pause"
have_all() { for b in $WANT; do [ -x "$BIN/$b" ] || return 1; done; }
if have_all; then echo "kubernetes binaries cached in $BIN"; exit 0; fi

mkdir -p "$CACHE/src" "$BIN"
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/bookworm-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -q
fi
cd "$CACHE/src"
[ -n "$(ls -d kubernetes-*/ 2>/dev/null)" ] || apt-get source -q kubernetes
TREE="$(ls -d "$CACHE"/src/kubernetes-*/ | head -1)"
cd "$TREE"

# Go 1.19 crashes the vendored reflect2 v1.0.1 (SIGSEGV in reflect.mapiternext); v1.0.2 from
# Debian has the same API.
R2=/usr/share/gocode/src/github.com/modern-go/reflect2
if [ -d "$R2" ] && ! grep -q 'reflect2 v1.0.2' vendor/modules.txt; then
  rm -rf vendor/github.com/modern-go/reflect2
  cp -r "$R2" vendor/github.com/modern-go/reflect2
  sed -i 's|^# github.com/modern-go/reflect2 v1.0.1|# github.com/modern-go/reflect2 v1.0.2|' vendor/modules.txt
  sed -i 's|github.com/modern-go/reflect2 v1.0.1$|github.com/modern-go/reflect2 v1.0.2|' go.mod
fi

export PATH="/usr/lib/go-1.19/bin:$PATH" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GO111MODULE=on
export GOCACHE="$CACHE/gocache" KUBE_GIT_VERSION="${KUBE_GIT_VERSION:-v1.20.2}"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  install -m 0755 "_output/local/bin/linux/amd64/$b" "$BIN/$b"
done
gcc -Os -static -o "$BIN/pause" build/pause/linux/pause.c
echo "kubernetes binaries built into $BIN"
