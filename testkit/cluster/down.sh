#!/usr/bin/env bash
# down.sh [--purge]: stop everything up.sh started: kubelet first, the pods' containers, kube-proxy
# (and its iptables chains), the cluster DNS, scheduler, controller-manager, apiserver, etcd,
# MariaDB, dockerd; unmount the pods' volumes. Caches, certificates and dockerd's data-root (image
# layers) stay, so the next up.sh is fast. --purge also deletes etcd's data, the MariaDB datadir
# and kubelet's pod directories (a fresh, empty cluster next time).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $EUID -eq 0 ]] || die "run as root"
lock
PURGE=0
case "${1:-}" in --purge) PURGE=1 ;; "") ;; *) die "usage: $0 [--purge]" ;; esac

stop_bg kubelet
if pid_alive dockerd; then
  ids="$(docker ps -aq --filter 'name=^k8s_' 2>/dev/null || true)"
  if [[ -n "$ids" ]]; then
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null 2>&1 || true
    log "removed $(wc -w <<<"$ids") pod containers"
  fi
fi
stop_bg kube-proxy

# Remove every KUBE-* chain (kube-proxy's, and kubelet's KUBE-FIREWALL/KUBE-MARK-*) and the jumps to them.
for table in nat filter mangle; do
  { iptables -w -t "$table" -S 2>/dev/null || true; } | { grep -E '^-A [A-Z-]+ .*-j KUBE-' || true; } |
    { grep -vE '^-A KUBE-' || true; } |
    while read -r rule; do
      # shellcheck disable=SC2086
      eval "iptables -w -t $table -D ${rule#-A }" || true
    done
  chains="$(iptables -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}')"
  for c in $chains; do iptables -w -t "$table" -F "$c"; done
  for c in $chains; do iptables -w -t "$table" -X "$c"; done
done

stop_bg cluster-dns
stop_bg kube-scheduler
stop_bg kube-controller-manager
stop_bg kube-apiserver
stop_bg etcd
stop_bg mariadb 60
stop_bg dockerd 30
rm -f "$RUN/dockershim.sock"

# Pod volumes (tmpfs secrets, ...) kubelet mounted: kubelet mounts them again for pods it restarts.
{ grep -F " $STATE/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" || true
done

if ((PURGE)); then
  rm -rf "$STATE/etcd" "$STATE/mariadb" "$STATE/kubelet" "$STATE/dockershim" "$STATE/env"
  log "purged etcd data, MariaDB datadir and kubelet's pod directories"
fi
log "cluster down"
