#!/usr/bin/env bash
# wait-service.sh NAMESPACE NAME [TIMEOUT_SECONDS=120]
# Wait until a Service of the test cluster can be called: its Endpoints have a ready address, and
# (ClusterIP Services) kube-proxy has programmed it: the nat table's KUBE-SERVICES jumps to a
# KUBE-SVC chain for each of its ports and that chain has KUBE-SEP endpoint rules. Before that, a
# packet to the ClusterIP leaves through eth0 and this machine's egress answers HTTP 404.
# Also waits until the cluster DNS answers NAME.NAMESPACE.svc.cluster.local. Prints the ClusterIP.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# >= 2)) || die "usage: $0 NAMESPACE NAME [TIMEOUT_SECONDS]"
NS="$1" NAME="$2" LIMIT="${3:-120}"
START=$SECONDS
left() { echo $((LIMIT - (SECONDS - START))); }

wait_for "$LIMIT" "service $NS/$NAME" kc get service -n "$NS" "$NAME"
read -r TYPE IP NPORTS < <(kc get service -n "$NS" "$NAME" \
  -o go-template='{{.spec.type}} {{.spec.clusterIP}} {{len .spec.ports}}{{"\n"}}')
if [[ "$TYPE" == ExternalName ]]; then echo "$NAME.$NS: ExternalName"; exit 0; fi

has_endpoints() {
  [[ -n "$(kc get endpoints -n "$NS" "$NAME" -o jsonpath='{.subsets[*].addresses[*].ip}')" ]]
}
wait_for "$(left)" "ready endpoints of $NS/$NAME" has_endpoints

programmed() {
  local rules chains c
  rules="$(iptables -w -t nat -S KUBE-SERVICES)"
  # The current ClusterIP too: a deleted Service of the same name may still have its rules.
  chains="$(grep -E -- "-d $IP/32 .*--comment \"$NS/$NAME(:[^ \"]*)? cluster IP\"" <<<"$rules" |
    grep -o 'KUBE-SVC-[A-Z0-9]*' | sort -u)"
  [[ "$(grep -c . <<<"$chains")" -ge "$NPORTS" ]] || return 1
  for c in $chains; do iptables -w -t nat -S "$c" | grep -q -- '-j KUBE-SEP-' || return 1; done
}
if [[ "$IP" != None ]]; then wait_for "$(left)" "kube-proxy rules of $NS/$NAME" programmed; fi

dns_answers() {
  local got
  got="$("$STATE/venv/bin/python" "$CLUSTER_DIR/cluster_dns.py" --listen "$BRIDGE_IP" --query "$NAME.$NS.svc.cluster.local")"
  [[ -n "$got" && ( "$IP" == None || "$got" == "$IP" ) ]]
}
if [[ -x "$STATE/venv/bin/python" ]]; then wait_for "$(left)" "cluster DNS for $NAME.$NS" dns_answers; fi
echo "$IP"
