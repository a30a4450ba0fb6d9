#!/usr/bin/env bash
# Removes the network namespaces, veths and bridges a fault test run left behind when it
# was killed before its own cleanup ran (Tests/SluiceFaultTests/FaultNetwork.swift). Their
# names are "sf", the creating process's pid in base 36 (5 characters), then more: only
# names whose pid no longer runs are removed, so a concurrent run's network is left alone.
# scripts/test.sh runs it after the fault suite; it needs root (it does nothing otherwise).
set -uo pipefail
[[ $(id -u) == 0 ]] && command -v ip >/dev/null || exit 0

is_leftover() {
    local name="$1" pid
    [[ $name =~ ^sf[0-9a-z]{5}. ]] || return 1
    pid=$((36#${name:2:5}))
    ! kill -0 "$pid" 2>/dev/null
}

for name in $(ip netns list | awk '{print $1}'); do
    if is_leftover "$name"; then ip netns del "$name" && echo "removed namespace $name"; fi
done
# Veths before bridges (a bridge still holding ports is removed all the same, but the
# order keeps the messages readable).
links="$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1)"
for name in $(grep -v 'br$' <<<"$links") $(grep 'br$' <<<"$links"); do
    if is_leftover "$name"; then ip link del "$name" 2>/dev/null && echo "removed link $name"; fi
done
exit 0
