#!/usr/bin/env bash
# Two "hosts" on one machine for multi-node tests: node1 and node2, each a network namespace with its own
# hostname (UTS namespace), address, /etc/hosts, /dev/shm and sshd, joined by a veth pair.
#
#   netns_hosts.sh up STATE_DIR            create the hosts (root only; installs openssh-server and pdsh)
#   netns_hosts.sh exec STATE_DIR HOST -- COMMAND...   run COMMAND on node1 or node2 (cwd and env kept)
#   netns_hosts.sh down STATE_DIR          end every process on the hosts and remove them
#
# Isolation: both veth ends live in the namespaces, so the hosts reach each other and their own loopback
# and nothing else (no route to or from the root namespace or any other network). Each host runs in a
# private mount namespace where STATE_DIR/hosts is /etc/hosts and STATE_DIR/ssh_config is
# /etc/ssh/ssh_config (passwordless ssh between the hosts), so nothing of the machine's own configuration
# is changed. Namespace names carry the pid given by XLMR_DS_NETNS_OWNER (default: this script's parent),
# so concurrent test sessions do not collide, and `up` removes hosts left by owners that are gone.
# node3 is in /etc/hosts at an address nobody holds: the down host that tests expect to fail fast.
set -euo pipefail

readonly SUBNET=10.200.0
declare -A ADDRESS=([node1]=$SUBNET.11 [node2]=$SUBNET.12)
readonly DOWN_HOST=node3 DOWN_ADDRESS=$SUBNET.13
readonly PREFIX=xlmrds

die() { echo "netns_hosts.sh: $*" >&2; exit 1; }

usage() { die "usage: netns_hosts.sh up|down STATE_DIR | exec STATE_DIR node1|node2 -- COMMAND..."; }

netns_name() { echo "$PREFIX-$1-$2"; }  # owner pid, host

owner_of() { cat "$1/owner" 2>/dev/null || true; }

sshd_pid() { cat "$1/sshd-$2.pid" 2>/dev/null || true; }

# End every process in the namespace (all of them were started by this environment), then remove it.
remove_namespace() {
    local namespace=$1 pids
    ip netns list | grep -qw "^$namespace" || return 0
    for _ in 1 2 3 4 5; do
        pids=$(ip netns pids "$namespace" 2>/dev/null || true)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.2
    done
    ip netns delete "$namespace" 2>/dev/null || true
}

remove_stale() {
    local namespace owner
    for namespace in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-[0-9]*-node[12]$" || true); do
        owner=${namespace#"$PREFIX"-}; owner=${owner%-node?}
        if ! kill -0 "$owner" 2>/dev/null; then
            echo "netns_hosts.sh: removing $namespace (its test session $owner is gone)" >&2
            remove_namespace "$namespace"
        fi
    done
}

install_packages() {
    local missing=()
    command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v pdsh >/dev/null || missing+=(pdsh)
    command -v ssh >/dev/null || missing+=(openssh-client)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "needs ${missing[*]} and there is no apt-get to install them"
    echo "netns_hosts.sh: installing ${missing[*]}" >&2
    # policy-rc.d (present in Debian containers) keeps the package from starting a system-wide sshd.
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q "${missing[@]}" >&2 \
        || { timeout 300 apt-get update -q >&2 && \
             DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q "${missing[@]}" >&2; } \
        || die "could not install ${missing[*]} with apt-get"
}

write_files() {
    local state=$1 host
    mkdir -p "$state"
    chmod 700 "$state"
    rm -f "$state"/id_ed25519* "$state"/ssh_host_ed25519_key*
    ssh-keygen -q -t ed25519 -N '' -C xlmr-ds-multinode -f "$state/id_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C xlmr-ds-multinode-host -f "$state/ssh_host_ed25519_key"
    cp "$state/id_ed25519.pub" "$state/authorized_keys"
    {
        echo "127.0.0.1 localhost"
        for host in node1 node2; do echo "${ADDRESS[$host]} $host"; done
        echo "$DOWN_ADDRESS $DOWN_HOST"
    } > "$state/hosts"
    cat > "$state/ssh_config" <<EOF
Host *
    IdentityFile $state/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
    ConnectTimeout 5
EOF
    for host in node1 node2; do
        cat > "$state/sshd_config-$host" <<EOF
ListenAddress ${ADDRESS[$host]}
HostKey $state/ssh_host_ed25519_key
AuthorizedKeysFile $state/authorized_keys
PidFile $state/sshd-$host.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 100
EOF
    done
}

start_host() {
    local state=$1 owner=$2 host=$3 namespace
    namespace=$(netns_name "$owner" "$host")
    rm -f "$state/sshd-$host.pid"
    # The host's own hostname, /etc/hosts, ssh client configuration and /dev/shm, in a mount namespace
    # that `ip netns exec` makes a slave of the root one (nothing mounted here shows outside).
    # shellcheck disable=SC2016
    ip netns exec "$namespace" unshare --uts --mount --propagation private -- sh -euc '
        hostname "$1"
        mount --bind "$2/hosts" /etc/hosts
        mount --bind "$2/ssh_config" /etc/ssh/ssh_config
        if [ -d /root/.ssh ]; then mkdir -p "$2/empty" && mount --bind "$2/empty" /root/.ssh; fi
        mount -t tmpfs -o size=2g,mode=1777 tmpfs /dev/shm
        mkdir -p /run/sshd
        exec /usr/sbin/sshd -f "$2/sshd_config-$1" -E "$2/sshd-$1.log"
    ' sh "$host" "$state"
    for _ in $(seq 50); do [ -s "$state/sshd-$host.pid" ] && return 0; sleep 0.1; done
    die "sshd on $host did not start; see $state/sshd-$host.log"
}

up() {
    local state=$1 owner=${XLMR_DS_NETNS_OWNER:-$PPID} host namespace
    [ "$(id -u)" -eq 0 ] || { echo "netns_hosts.sh: needs root (network namespaces, sshd)" >&2; exit 77; }
    for tool in ip unshare nsenter; do command -v $tool >/dev/null || die "needs $tool"; done
    remove_stale
    install_packages
    state=$(mkdir -p "$state" && cd "$state" && pwd)
    echo "$owner" > "$state/owner"
    trap 'down "$state"' EXIT  # a failed set-up leaves nothing behind
    write_files "$state"
    for host in node1 node2; do
        namespace=$(netns_name "$owner" "$host")
        remove_namespace "$namespace"
        ip netns add "$namespace"
        ip -n "$namespace" link set lo up
    done
    ip link add eth0 netns "$(netns_name "$owner" node1)" type veth peer name eth0 netns "$(netns_name "$owner" node2)"
    for host in node1 node2; do
        namespace=$(netns_name "$owner" "$host")
        ip -n "$namespace" addr add "${ADDRESS[$host]}/24" dev eth0
        ip -n "$namespace" link set eth0 up
        start_host "$state" "$owner" "$host"
    done
    # Ready when each host reaches both sshds by name.
    for host in node1 node2; do
        for target in node1 node2; do
            for attempt in $(seq 50); do
                if run_on "$state" "$host" timeout 10 ssh "$target" true 2>/dev/null; then break; fi
                [ "$attempt" -eq 50 ] && die "$host cannot ssh to $target; see $state/sshd-$target.log"
                sleep 0.1
            done
        done
    done
    trap - EXIT
    echo "netns_hosts.sh: node1 ${ADDRESS[node1]} and node2 ${ADDRESS[node2]} are up (state in $state)" >&2
}

run_on() {
    local state=$1 host=$2 pid
    shift 2
    pid=$(sshd_pid "$state" "$host")
    [ -n "$pid" ] || die "$host is not up (no $state/sshd-$host.pid)"
    nsenter --target "$pid" --net --uts --mount --wd="$PWD" -- "$@"
}

down() {
    local state=$1 owner host
    owner=$(owner_of "$state")
    [ -n "$owner" ] || return 0
    for host in node1 node2; do remove_namespace "$(netns_name "$owner" "$host")"; done
    rm -f "$state"/id_ed25519* "$state"/ssh_host_ed25519_key* "$state"/sshd-*.pid "$state/owner"
}

[ $# -ge 2 ] || usage
command=$1 state=$2
shift 2
case $command in
    up) up "$state" ;;
    down) down "$state" ;;
    exec)
        [ $# -ge 2 ] && [ "$2" = "--" ] || usage
        host=$1; shift 2
        case $host in node1|node2) ;; *) die "unknown host $host (node1 or node2)" ;; esac
        run_on "$state" "$host" "$@" ;;
    *) usage ;;
esac
