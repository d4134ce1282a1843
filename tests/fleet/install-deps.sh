#!/usr/bin/env bash
# Install what tests/fleet/fleet.sh needs to run SSH hosts in network namespaces
# (Debian/Ubuntu, as root). Idempotent: returns at once when everything is present.
#
#   tests/fleet/install-deps.sh
#
# apt-get update runs only when the first install attempt fails (stale or missing lists).
# Package maintainer scripts are kept from starting services on this machine (policy-rc.d).
set -euo pipefail

PACKAGES=(openssh-server openssh-client iproute2 sudo)
NEEDED_BINARIES=(/usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/bin/sudo)

have_all() {
    local b
    for b in "${NEEDED_BINARIES[@]}"; do
        [[ -x $b ]] || return 1
    done
    command -v ip >/dev/null || return 1
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || return 1
    done
}

if have_all; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps.sh: must run as root to install ${PACKAGES[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "install-deps.sh: apt-get not found; install ${PACKAGES[*]} by hand" >&2
    exit 1
fi

# Keep openssh-server's postinst from starting a real sshd on port 22 of this machine.
policy=/usr/sbin/policy-rc.d
created_policy=
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [[ -n $created_policy ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${PACKAGES[@]}"
}

if ! install; then
    echo "install-deps.sh: install failed, running apt-get update and retrying" >&2
    apt-get update -q
    install
fi

if ! have_all; then
    echo "install-deps.sh: packages installed but a binary is still missing" >&2
    exit 1
fi
