#!/usr/bin/env bash
# A fleet of real SSH hosts on this machine, one Linux network namespace each (no containers).
#
#   tests/fleet/fleet.sh up   --name NAME --hosts N --dir DIR [--subnet A.B.C] [--share PATH]...
#   tests/fleet/fleet.sh down --name NAME --dir DIR
#
# Must run as root. `up` writes DIR/inventory.yml (group codex_runners), DIR/ssh_config (for
# `ssh -F`), DIR/known_hosts and the test key DIR/id_ed25519. See tests/fleet/README.md.
#
# Per host NAME-i (address A.B.C.(i+1), controller A.B.C.1 on a bridge in the root namespace):
#   - network namespace NAME-i, veth eth0 on the fleet bridge
#   - mount namespace + UTS namespace (own hostname) + PID namespace (sshd is PID 1)
#   - /            copy-on-write overlay of the real / (upper/work in DIR/hosts/NAME-i/), entered
#                  with chroot: its own /etc (passwd with user ci, sudoers, systemd, cron), /usr, /var
#   - /root, /home, /tmp   bind mounts of fresh per-host directories (real ones are NOT visible)
#   - /work        bind of the real /work (shared, read-write: the checkout and its .cache),
#                  and of each --share PATH at the same path
#   - /root/.pyenv bind of the real one, read-only
#   - /proc (own PID namespace), /sys, /dev (with its own /dev/shm), /run (tmpfs)
#   - /run/fleet   bind of DIR/hosts/NAME-i/conf: sshd_config, host key, authorized_keys, sshd.log
# All those mounts live only in the host's private mount namespace: they disappear with its
# processes. Nothing is mounted in the root namespace, except a tmpfs on DIR/hosts when DIR is on
# an overlayfs (which cannot hold overlay upper dirs) or FLEET_TMPFS=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=/run/fleet-sh
RUNNER_USER=ci
RUNNER_UID=1001

die() { echo "fleet.sh: $*" >&2; exit 1; }
log() { [[ -n ${FLEET_QUIET:-} ]] || echo "fleet.sh: $*" >&2; }

usage() {
    sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- names derived from NAME
derive_names() {
    [[ $NAME =~ ^[a-zA-Z][a-zA-Z0-9_]{0,30}(-[a-zA-Z][a-zA-Z0-9_]*)*$ ]] ||
        die "--name must start with a letter and contain letters, digits, _ and - (no '-<digits>' parts): $NAME"
    HASH=$(printf '%s' "$NAME" | sha1sum | cut -c1-8)
    BRIDGE="fb$HASH"          # <= 15 chars (IFNAMSIZ)
    VETH_PREFIX="f${HASH}h"   # + host index: <= 13 chars
    STATE_FILE="$STATE_DIR/$NAME.env"
}

subnet_in_use() {
    local re="^${1//./\\.}\\."
    ip -4 -o addr show | awk '{print $4}' | grep -q "$re" ||
        ip -4 route show | awk '{print $1}' | grep -q "$re"
}

default_subnet() {
    # 10.231.X with X in 10..249 derived from the name, so two fleets can coexist; the next free
    # X when that one is taken.
    local x=$(( 0x$HASH % 240 )) i
    for ((i = 0; i < 240; i++)); do
        if ! subnet_in_use "10.231.$(( (x + i) % 240 + 10 ))"; then
            echo "10.231.$(( (x + i) % 240 + 10 ))"
            return
        fi
    done
    die "no free 10.231.X subnet"
}

abs_dir() {
    [[ -n $DIR ]] || die "--dir is required"
    DIR=$(realpath -m "$DIR")
    [[ $DIR != / ]] || die "--dir must not be /"
    # ControlPath DIR/cp-%C (%C = 40 hex chars) must fit a unix socket path (108 bytes).
    ((${#DIR} + 44 < 104)) || die "--dir too long for ssh ControlPath sockets (max ~60 chars): $DIR"
    mkdir -p "$DIR"
}

# ---------------------------------------------------------------- teardown
# Everything here tolerates missing pieces, so it cleans up a half-made fleet too.
teardown() {
    local namespaces=() ns pids pid dirs=() d
    if [[ -f $STATE_FILE ]]; then
        local FLEET_HOSTS="" FLEET_DIR=""
        FLEET_HOSTS=$(sed -n 's/^FLEET_HOSTS=//p' "$STATE_FILE")
        FLEET_DIR=$(sed -n 's/^FLEET_DIR=//p' "$STATE_FILE")
        read -r -a namespaces <<<"$FLEET_HOSTS"
        [[ -z $FLEET_DIR ]] || dirs+=("$FLEET_DIR")
    else
        # No record (removed by hand?): fall back to the naming scheme NAME-<number>.
        while read -r ns _; do
            [[ $ns =~ ^${NAME}-[0-9]+$ ]] && namespaces+=("$ns")
        done < <(ip netns list 2>/dev/null || true)
    fi
    [[ -z ${DIR:-} || ${dirs[0]:-} == "$DIR" ]] || dirs+=("$DIR")

    # 1. Stop this fleet's ssh ControlMaster processes while their hosts still answer.
    local sock cm_pids=()
    for d in "${dirs[@]}"; do
        for sock in "$d"/cp-*; do
            [[ -S $sock ]] || continue
            timeout 3 ssh -o ControlPath="$sock" -O exit fleet-host >/dev/null 2>&1 &
            cm_pids+=($!)
        done
    done
    for pid in "${cm_pids[@]}"; do wait "$pid" || true; done
    for d in "${dirs[@]}"; do rm -f "$d"/cp-*; done

    # 2. Kill every process in the hosts' network namespaces (sshd is PID 1 of its own PID
    #    namespace: killing it takes its sessions and their children along).
    local all_pids=()
    for ns in "${namespaces[@]}"; do
        [[ -e /run/netns/$ns ]] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for pid in $pids; do all_pids+=("$pid"); done
    done
    if ((${#all_pids[@]})); then
        kill -KILL "${all_pids[@]}" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            local alive=0
            for pid in "${all_pids[@]}"; do
                # a zombie (state Z) no longer holds namespaces or mounts
                if [[ -e /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
                    alive=1; break
                fi
            done
            ((alive)) || break
            sleep 0.05
        done
    fi

    # 3. Links and namespaces, in one batch that goes on past errors (missing pieces).
    {
        ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
            grep -E "^${VETH_PREFIX}[0-9]+$" | sed 's/^/link del /' || true
        ip link show "$BRIDGE" >/dev/null 2>&1 && echo "link del $BRIDGE"
        for ns in "${namespaces[@]}"; do
            [[ -e /run/netns/$ns ]] && echo "netns del $ns"
        done
    } | ip -force -batch - 2>/dev/null || true

    # 4. Mounts (all are made inside the hosts' private mount namespaces, except the tmpfs on
    #    DIR/hosts when DIR is on an overlayfs) and files. Never rm -rf through a mount point.
    for d in "${dirs[@]}"; do
        [[ -d $d/hosts ]] || continue
        local mp
        while read -r mp; do
            umount -l "$mp" 2>/dev/null || true
        done < <(awk -v p="$d/hosts" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
        if awk -v p="$d/hosts" '$5 == p || index($5, p "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
            die "something is still mounted under $d/hosts; not removing it"
        fi
        rm -rf "$d/hosts"
        rm -f "$d/inventory.yml" "$d/ssh_config" "$d/known_hosts" "$d/id_ed25519" "$d/id_ed25519.pub"
    done
    rm -f "$STATE_FILE"
}

cmd_down() {
    derive_names
    DIR=$(realpath -m "$DIR")
    local t0=$EPOCHREALTIME
    teardown
    log "down $NAME in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}') s"
}

# ---------------------------------------------------------------- bring-up
check_prereqs() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    if [[ ! -x /usr/sbin/sshd ]] || ! command -v ip >/dev/null || [[ ! -x /usr/bin/sudo ]] ||
        ! command -v ssh-keygen >/dev/null; then
        log "installing prerequisites (tests/fleet/install-deps.sh)"
        "$HERE/install-deps.sh" >&2
    fi
    local t
    for t in unshare chroot mount ssh-keygen ip sha1sum awk; do
        command -v "$t" >/dev/null || die "missing $t"
    done
    if ! grep -qw overlay /proc/filesystems; then
        modprobe overlay 2>/dev/null || true
        grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem"
    fi
}

# The per-host boot script, run as PID 1 of the host's PID namespace, inside its network,
# mount and UTS namespaces. Arguments come through the environment.
# shellcheck disable=SC2016
HOST_BOOT='
set -eu
R=$HD/rootfs
# volatile: no syncs to the upper layer (faster dpkg inside, no flush of / at teardown).
mount -t overlay "fleet-$H" -o "lowerdir=/,upperdir=$HD/upper,workdir=$HD/work,volatile" "$R" 2>/dev/null ||
    mount -t overlay "fleet-$H" -o "lowerdir=/,upperdir=$HD/upper,workdir=$HD/work" "$R"
mount --bind "$HD/home" "$R/home"
mount --bind "$HD/roothome" "$R/root"
mount --bind "$HD/tmp" "$R/tmp"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777,size=256m shm "$R/dev/shm"
mount -t tmpfs -o mode=755,size=64m run "$R/run"
mkdir -p "$R/run/sshd" "$R/run/fleet" "$R/run/lock"
chmod 755 "$R/run/sshd"
chmod 1777 "$R/run/lock"
mount --bind "$HD/conf" "$R/run/fleet"
while IFS= read -r p; do
    [ -n "$p" ] || continue
    mkdir -p "$R$p"
    mount --bind "$p" "$R$p"
done < "$HD/conf/shares"
if [ -d /root/.pyenv ]; then
    mount --bind /root/.pyenv "$R/root/.pyenv"
    mount -o remount,bind,ro "$R/root/.pyenv"
fi
hostname "$H"
exec chroot "$R" /usr/sbin/sshd -D -f /run/fleet/sshd_config -E /run/fleet/sshd.log
'

write_passwd_files() {
    # Copies of the real account files in the host's overlay upper dir, plus the runner user.
    local etc=$1 days
    days=$(( $(date +%s) / 86400 ))
    mkdir -p "$etc"
    local f
    for f in passwd group shadow gshadow; do
        [[ -e /etc/$f ]] || continue
        cp -p "/etc/$f" "$etc/$f"
    done
    # Drop any existing entry for the name or the id, then append ours.
    awk -F: -v u="$RUNNER_USER" -v id="$RUNNER_UID" '$1 != u && $3 != id' /etc/passwd >"$etc/passwd"
    echo "$RUNNER_USER:x:$RUNNER_UID:$RUNNER_UID::/home/$RUNNER_USER:/bin/bash" >>"$etc/passwd"
    awk -F: -v u="$RUNNER_USER" -v id="$RUNNER_UID" '$1 != u && $3 != id' /etc/group >"$etc/group"
    echo "$RUNNER_USER:x:$RUNNER_UID:" >>"$etc/group"
    if [[ -e /etc/shadow ]]; then
        # "*": no password, but not locked (sshd with UsePAM no refuses "!" accounts).
        awk -F: -v OFS=: -v u="$RUNNER_USER" '$1 != u { if ($1 == "root" && $2 ~ /^!/) $2 = "*"; print }' \
            /etc/shadow >"$etc/shadow"
        echo "$RUNNER_USER:*:$days:0:99999:7:::" >>"$etc/shadow"
    fi
    if [[ -e /etc/gshadow ]]; then
        awk -F: -v u="$RUNNER_USER" '$1 != u' /etc/gshadow >"$etc/gshadow"
        echo "$RUNNER_USER:!::" >>"$etc/gshadow"
    fi
}

prepare_template() {
    # What every host starts from; each host gets a copy (cp -a) of it.
    local t="$DIR/hosts/.template"
    mkdir -p "$t"/{upper/etc,work,rootfs,home,roothome/.pyenv,tmp,conf}
    chmod 1777 "$t/tmp"
    cp -a /etc/skel/. "$t/roothome/"
    chmod 700 "$t/roothome"
    mkdir -p "$t/home/$RUNNER_USER"
    cp -a /etc/skel/. "$t/home/$RUNNER_USER/"
    chown -R "$RUNNER_UID:$RUNNER_UID" "$t/home/$RUNNER_USER"
    chmod 750 "$t/home/$RUNNER_USER"
    write_passwd_files "$t/upper/etc"
    {
        printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n'
        printf '%s\t%s\n' "$SUBNET.1" "fleet-controller"
        cat "$DIR/hosts/.hosts"
    } >"$t/upper/etc/hosts"
    cp "$DIR/id_ed25519.pub" "$t/conf/authorized_keys"
    printf '%s\n' "${SHARES[@]}" >"$t/conf/shares"
}

prepare_host() {
    # Runs in the background, one per host.
    local h=$1 ip=$2 hd="$DIR/hosts/$1"
    cp -a "$DIR/hosts/.template" "$hd"
    echo "$h" >"$hd/upper/etc/hostname"
    ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$hd/conf/ssh_host_ed25519_key"
    cat >"$hd/conf/sshd_config" <<EOF
# generated by tests/fleet/fleet.sh for $h
ListenAddress $ip
Port 22
HostKey /run/fleet/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile /run/fleet/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel INFO
EOF
}

start_host() {
    local h=$1 hd="$DIR/hosts/$1"
    H=$h HD=$hd setsid ip netns exec "$h" \
        unshare --mount --uts --pid --fork --propagation private \
        /bin/sh -c "$HOST_BOOT" </dev/null >"$hd/boot.log" 2>&1 &
}

cmd_up() {
    if ! [[ $HOSTS =~ ^[0-9]+$ ]] || ((HOSTS < 1 || HOSTS > 250)); then die "--hosts must be 1..250"; fi
    derive_names
    abs_dir
    check_prereqs

    local t0=$EPOCHREALTIME

    # Idempotent: whatever fleet of this name exists (any DIR) goes first.
    if [[ -f $STATE_FILE ]] || ip link show "$BRIDGE" >/dev/null 2>&1; then
        log "tearing down the existing fleet $NAME"
        teardown
    fi
    [[ -n $SUBNET ]] || SUBNET=$(default_subnet)
    [[ $SUBNET =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "--subnet must look like 10.231.77"
    local o
    for o in "${BASH_REMATCH[@]:1}"; do ((o <= 255)) || die "bad --subnet $SUBNET"; done
    # The subnet must be unused here (another fleet, a real network).
    if subnet_in_use "$SUBNET"; then
        die "subnet $SUBNET.0/24 is already in use on this machine; pick another with --subnet"
    fi

    local hosts=() i
    for ((i = 1; i <= HOSTS; i++)); do hosts+=("$NAME-$i"); done
    for i in "${!hosts[@]}"; do
        [[ ! -e /run/netns/${hosts[$i]} ]] || die "network namespace ${hosts[$i]} exists and is not ours"
    done

    # Record the fleet before creating anything, so `down` can clean up a half-made one.
    mkdir -p "$STATE_DIR"
    {
        echo "FLEET_NAME=$NAME"
        echo "FLEET_DIR=$DIR"
        echo "FLEET_SUBNET=$SUBNET"
        echo "FLEET_HOSTS=${hosts[*]}"
    } >"$STATE_FILE"
    UP_DONE=""
    trap 'if [[ -z $UP_DONE ]]; then echo "fleet.sh: up failed; tearing down" >&2; FLEET_QUIET=1 teardown || true; fi' EXIT

    rm -rf "$DIR/hosts"
    mkdir -p "$DIR/hosts"
    # An overlayfs (e.g. / of a container) cannot hold an overlay's upper dir: use a tmpfs there.
    if [[ $(stat -f -c %T "$DIR/hosts") == overlayfs || -n ${FLEET_TMPFS:-} ]]; then
        mount -t tmpfs -o mode=755 "fleet-$NAME" "$DIR/hosts"
    fi
    rm -f "$DIR/id_ed25519" "$DIR/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "fleet-$NAME" -f "$DIR/id_ed25519"
    for i in "${!hosts[@]}"; do
        printf '%s\t%s\n' "$SUBNET.$((i + 2))" "${hosts[$i]}"
    done >"$DIR/hosts/.hosts"

    # Network: one batch for the root namespace, one per host namespace.
    local batch="$DIR/hosts/.ip-root"
    {
        echo "link add $BRIDGE type bridge"
        echo "addr add $SUBNET.1/24 dev $BRIDGE"
        echo "link set $BRIDGE up"
        for i in "${!hosts[@]}"; do echo "netns add ${hosts[$i]}"; done
        for i in "${!hosts[@]}"; do
            echo "link add $VETH_PREFIX$((i + 1)) type veth peer name eth0 netns ${hosts[$i]}"
            echo "link set $VETH_PREFIX$((i + 1)) master $BRIDGE up"
        done
    } >"$batch"
    ip -batch "$batch"
    local pids=()
    for i in "${!hosts[@]}"; do
        printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "$SUBNET.$((i + 2))" |
            ip -n "${hosts[$i]}" -batch - &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done

    # Files (in parallel), then sshd per host.
    prepare_template
    pids=()
    for i in "${!hosts[@]}"; do
        prepare_host "${hosts[$i]}" "$SUBNET.$((i + 2))" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    for i in "${!hosts[@]}"; do start_host "${hosts[$i]}"; done

    local py=/usr/bin/python3
    if [[ ! -x $py ]]; then
        py=$(command -v python3 || true)
        [[ -n $py ]] || die "no python3 for Ansible inside the hosts"
        py=$(readlink -f "$py")
    fi

    write_client_files "$py" "${hosts[@]}"

    # Wait until every sshd listens.
    local deadline=$((SECONDS + 30)) h
    for i in "${!hosts[@]}"; do
        h=${hosts[$i]}
        until grep -q 'Server listening' "$DIR/hosts/$h/conf/sshd.log" 2>/dev/null; do
            if ((SECONDS > deadline)); then
                cat "$DIR/hosts/$h/boot.log" "$DIR/hosts/$h/conf/sshd.log" >&2 2>/dev/null || true
                die "sshd of $h did not start"
            fi
            if [[ -s $DIR/hosts/$h/boot.log ]] && [[ -z $(ip netns pids "$h" 2>/dev/null) ]]; then
                cat "$DIR/hosts/$h/boot.log" >&2
                die "host $h failed to boot"
            fi
            sleep 0.02
        done
    done
    UP_DONE=1
    log "up $NAME: $HOSTS host(s) on $SUBNET.0/24 in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}') s; inventory $DIR/inventory.yml"
}

write_client_files() {
    local py=$1; shift
    local hosts=("$@") i h ip
    local common="-o UserKnownHostsFile=$DIR/known_hosts -o StrictHostKeyChecking=no -o ControlMaster=auto -o ControlPersist=60s -o ControlPath=$DIR/cp-%C"

    : >"$DIR/known_hosts"
    for i in "${!hosts[@]}"; do
        h=${hosts[$i]}; ip=$SUBNET.$((i + 2))
        printf '%s,%s %s\n' "$h" "$ip" "$(cut -d' ' -f1-2 "$DIR/hosts/$h/conf/ssh_host_ed25519_key.pub")"
    done >>"$DIR/known_hosts"

    {
        echo "# generated by tests/fleet/fleet.sh up --name $NAME: ssh -F $DIR/ssh_config $NAME-1"
        for i in "${!hosts[@]}"; do
            printf 'Host %s %s\n    HostName %s\n' "${hosts[$i]}" "$SUBNET.$((i + 2))" "$SUBNET.$((i + 2))"
        done
        cat <<EOF
Host *
    User root
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking no
    ControlMaster auto
    ControlPersist 60s
    ControlPath $DIR/cp-%C
    LogLevel ERROR
    BatchMode yes
EOF
    } >"$DIR/ssh_config"

    {
        echo "# generated by tests/fleet/fleet.sh up --name $NAME --hosts ${#hosts[@]}"
        echo "codex_runners:"
        echo "  vars:"
        echo "    codex_runner_user: $RUNNER_USER"
        echo "  hosts:"
        for i in "${!hosts[@]}"; do
            echo "    ${hosts[$i]}:"
            echo "      ansible_host: $SUBNET.$((i + 2))"
            echo "      ansible_user: root"
            echo "      ansible_ssh_private_key_file: $DIR/id_ed25519"
            echo "      ansible_ssh_common_args: '$common'"
            echo "      ansible_python_interpreter: $py"
        done
    } >"$DIR/inventory.yml"
}

# ---------------------------------------------------------------- main
CMD=${1:-}
[[ -n $CMD ]] || usage
shift
NAME="" HOSTS="" DIR="" SUBNET=""
SHARES=()
[[ ! -d /work ]] || SHARES+=(/work)
while (($#)); do
    case $1 in
        --name) NAME=${2:?}; shift 2 ;;
        --hosts) HOSTS=${2:?}; shift 2 ;;
        --dir) DIR=${2:?}; shift 2 ;;
        --subnet) SUBNET=${2:?}; shift 2 ;;
        --share)
            [[ -d ${2:?} ]] || die "--share $2: not a directory"
            SHARES+=("$(cd "$2" && pwd -P)"); shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ -n $NAME ]] || die "--name is required"
[[ $(id -u) -eq 0 ]] || die "must run as root"

case $CMD in
    up) [[ -n $HOSTS ]] || die "--hosts is required"; cmd_up ;;
    down) [[ -n $DIR ]] || die "--dir is required"; cmd_down ;;
    *) usage ;;
esac
