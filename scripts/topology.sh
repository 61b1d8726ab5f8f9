#!/usr/bin/env bash
# A client / hub / service topology of network namespaces joined by veth pairs, using
# documentation addresses only. The hub routes between the two sides; sdn-filter is attached
# to the hub's two interfaces (hc faces the client, hs faces the service).
#
#   usage: topology.sh up|down [PREFIX]     (PREFIX default "sdn"; names stay <= 15 chars)
#
#   PREFIX-client  PREFIXc0  198.51.100.10/24 198.51.100.20/24 2001:db8:100::10/64
#        |
#   PREFIX-hub     PREFIXhc  198.51.100.1/24  2001:db8:100::1/64
#                  PREFIXhs  203.0.113.1/24   2001:db8:300::1/64
#        |
#   PREFIX-service PREFIXs0  203.0.113.10/24 203.0.113.20/24 2001:db8:300::10/64
set -euo pipefail
cmd=${1:?usage: topology.sh up|down [PREFIX]}
p=${2:-sdn}
c="$p-client" h="$p-hub" s="$p-service"

down() {
  for ns in "$c" "$h" "$s"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}

up() {
  down
  for ns in "$c" "$h" "$s"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip link add "${p}c0" netns "$c" type veth peer name "${p}hc" netns "$h"
  ip link add "${p}s0" netns "$s" type veth peer name "${p}hs" netns "$h"
  for ns in "$c" "$h" "$s"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  ip netns exec "$h" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

  ip -n "$c" addr add 198.51.100.10/24 dev "${p}c0"
  ip -n "$c" addr add 198.51.100.20/24 dev "${p}c0"
  ip -n "$c" addr add 2001:db8:100::10/64 dev "${p}c0" nodad
  ip -n "$h" addr add 198.51.100.1/24 dev "${p}hc"
  ip -n "$h" addr add 2001:db8:100::1/64 dev "${p}hc" nodad
  ip -n "$h" addr add 203.0.113.1/24 dev "${p}hs"
  ip -n "$h" addr add 2001:db8:300::1/64 dev "${p}hs" nodad
  ip -n "$s" addr add 203.0.113.10/24 dev "${p}s0"
  ip -n "$s" addr add 203.0.113.20/24 dev "${p}s0"
  ip -n "$s" addr add 2001:db8:300::10/64 dev "${p}s0" nodad
  for pair in "$c:${p}c0" "$h:${p}hc" "$h:${p}hs" "$s:${p}s0"; do
    ip -n "${pair%%:*}" link set "${pair##*:}" up
  done
  ip -n "$c" route add default via 198.51.100.1
  ip -n "$c" -6 route add default via 2001:db8:100::1
  ip -n "$s" route add default via 203.0.113.1
  ip -n "$s" -6 route add default via 2001:db8:300::1
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: topology.sh up|down [PREFIX]" >&2; exit 2 ;;
esac
