#!/usr/bin/env bash
# Install the Debian packages the test cluster needs (docker, etcd, Go and sources to build
# Kubernetes 1.20, debootstrap for the base image, MariaDB, openssl, iptables tools...).
# Only what is missing is installed (apt-get, noninteractive); a second call takes well under a
# second. Run as root.
set -euo pipefail
PACKAGES=(
  docker.io etcd-server golang-1.19-go golang-github-modern-go-reflect2-dev gcc libc6-dev make
  debootstrap busybox-static conntrack iptables socat openssl ca-certificates curl jq iproute2
  mariadb-server mariadb-client python3 python3-venv dpkg-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then echo "packages: all ${#PACKAGES[@]} present"; exit 0; fi
echo "packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
