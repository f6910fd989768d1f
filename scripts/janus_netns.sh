#!/usr/bin/env bash
# Run a command (or a shell) in a fresh private network namespace prepared for WebRTC tests:
# loopback up plus a veth pair bl-janus 192.0.2.1/24 <-> bl-peer 192.0.2.2/24 (RFC 5737 range).
# Nothing outside the namespace can be addressed from inside; the host's network is untouched.
# Janus: ice_enforce_list = "bl-janus", interface = "192.0.2.1"; aiortc: host addresses 192.0.2.2/32.
#
#   scripts/janus_netns.sh run .venv/bin/python -m video.media.janus_process serve --var-dir /tmp/jv \
#       --ice-enforce bl-janus --interface 192.0.2.1
# (the test scenarios set their namespace up themselves: they run under plain `unshare --net`.)
#   scripts/janus_netns.sh shell
# Needs root (or CAP_SYS_ADMIN) for unshare, and iproute2.
set -euo pipefail

usage() { echo "usage: $0 run COMMAND [ARGS...] | shell" >&2; exit 2; }
[ $# -ge 1 ] || usage
mode=$1; shift
case "$mode" in
  run) [ $# -ge 1 ] || usage ;;
  shell) set -- "${SHELL:-/bin/bash}" ;;
  *) usage ;;
esac

# The setup script runs only inside the new namespace (unshare --net starts it there).
exec unshare --net -- bash -euo pipefail -c '
  ip link set lo up
  ip link add bl-janus type veth peer name bl-peer
  ip addr add 192.0.2.1/24 dev bl-janus
  ip addr add 192.0.2.2/24 dev bl-peer
  ip link set bl-janus up
  ip link set bl-peer up
  # Both ends live here, so a packet arrives with a local source address: accept it
  # (these sysctls belong to this namespace only).
  for iface in all bl-janus bl-peer; do
    echo 1 > /proc/sys/net/ipv4/conf/$iface/accept_local
    echo 0 > /proc/sys/net/ipv4/conf/$iface/rp_filter
  done
  exec "$@"
' janus-netns "$@"
