# shellcheck shell=bash
# Private Docker engines on this machine, each in network, mount and UTS
# namespaces of its own, so that a multi-node setup (a Docker Swarm of two
# "hosts", a daemon restart) can be tested for real without touching the
# machine's own engine. Source it (needs root, dockerd, ip, nsenter, unshare):
#
#   # shellcheck source=lib/second-engine.sh
#   source "$repo/scripts/lib/second-engine.sh"
#   engine_start swa 198.18.7.2/24     # engine "swa" at 198.18.7.2 on fabric 198.18.7.0/24
#   engine_start swb 198.18.7.3/24     # a second one on the same fabric
#   engine_docker swa info             # the docker CLI against engine "swa"
#   engine_restart swa                 # stop and start its daemons (containers stop)
#   engine_restart swa --kill          # SIGKILL its daemons, start them again
#   engine_stop swb; engine_stop swa   # remove everything of each
#
# What an engine is:
# - network namespace `hfe-<name>`: its own interfaces, routes and iptables
#   (dockerd writes its rules there, never into the host's). Its `eth0` has
#   the address given and is the port of a veth pair whose other end sits in
#   a bridge, the fabric of that subnet;
# - the fabric: network namespace `hff-<network as hex>` holding bridge `br0`,
#   one port per engine and one veth to this host (`hff<hex>` here, with the
#   subnet's first address), so this host reaches every engine's address
#   directly and engines reach each other (swarm control on 2377, gossip on
#   7946, VXLAN on 4789). It is created by the first engine of a subnet and
#   removed with the last. The host's iptables are not touched and no
#   forwarding through the host is needed; the bridge's netfilter hooks run in
#   the fabric's namespace, whose tables are empty;
# - mount and UTS namespaces held by a `sleep` (pid in <dir>/holder.pid):
#   a fresh sysfs for its network namespace (host cgroups bound back in), an
#   empty tmpfs on /run/containerd (so dockerd starts a containerd of its own
#   even where a system containerd runs, and the shims' sockets and runc's
#   state stay private; the directory is created on the host if missing, as
#   the machine's own containerd does), and
#   hostname <name> (the swarm node's name). Daemons are started inside them,
#   so every mount they make vanishes with the namespace;
# - dockerd with its own --data-root, --exec-root, --pidfile, socket
#   (<dir>/docker.sock), config file (the machine's /etc/docker/daemon.json is
#   not read), containerd namespace `hfe-<name>` and cgroup parent
#   `/hfe-<name>`, and the containerd it starts and supervises. It runs with
#   DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: there is no registry (nor DNS) in
#   its namespace, and a swarm task would otherwise try to pull its image
#   first and wait for the lookup to time out (20 s per lookup here).
#   Its log's "enabling default vlan on bridge br0 failed ... permission
#   denied" (overlay networks) is harmless and appears on ordinary hosts too
#   (docker/for-linux#89).
#
# <dir> is $HYPERFAKE_ENGINES_DIR/<name> (default /tmp/hyperfake-engines):
# daemon.json, dockerd.log, docker.sock, the data and exec roots.
# ENGINE_STORAGE_DRIVER (default overlay2; vfs works anywhere) picks the
# storage driver. Engine names: a lower-case letter, then up to 11 of [a-z0-9-].
#
# Functions (each returns non-zero and says why on stderr when it fails):
#   engine_start NAME ADDRESS/PREFIX   create and start; waits until `docker info` answers
#   engine_docker NAME ARGS...         run the docker CLI against the engine
#   engine_socket NAME                 print its socket (unix://...)
#   engine_address NAME                print its address on the fabric
#   engine_exec NAME CMD...            run a command in its network namespace (tc, ss, ip)
#   engine_restart NAME [--kill]       stop (SIGTERM; --kill: SIGKILL, a crash) and start
#                                      its dockerd and containerd again, same namespaces
#   engine_stop NAME                   remove everything: processes, containers (their
#                                      cgroups), namespaces, veths, the fabric when
#                                      unused, the state directory. Idempotent; also
#                                      cleans up after a crashed start
#   engine_list                        print the names of engines with a state directory
#   engine_check                       the tools and privileges needed, or why not

hyperfake_engines_dir="${HYPERFAKE_ENGINES_DIR:-/tmp/hyperfake-engines}"
# Seconds dockerd gets to stop its containers and exit on SIGTERM.
hyperfake_engine_stop_seconds=40

_engine_err() { echo "second-engine: $*" >&2; }

_engine_name_ok() {
    [[ "${1:-}" =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
        { _engine_err "bad engine name '${1:-}' (a lower-case letter, then up to 11 of [a-z0-9-])"; return 1; }
}

_engine_dir() { echo "$hyperfake_engines_dir/$1"; }

_ip_to_int() {
    local IFS=. a b c d
    read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

_int_to_ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }

# _engine_parse_cidr A.B.C.D/P: sets _addr _prefix _net _host (first address: this host's) _bcast.
_engine_parse_cidr() {
    local re='^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$'
    [[ "$1" =~ $re ]] || { _engine_err "bad address '$1' (expected A.B.C.D/PREFIX, e.g. 198.18.7.2/24)"; return 1; }
    local i
    for i in 1 2 3 4; do
        ((BASH_REMATCH[i] <= 255)) || { _engine_err "bad address '$1'"; return 1; }
    done
    _prefix=${BASH_REMATCH[5]}
    ((_prefix >= 8 && _prefix <= 29)) || { _engine_err "prefix /$_prefix of '$1' not in 8..29"; return 1; }
    local ip mask
    ip=$(_ip_to_int "${1%/*}")
    mask=$(((0xffffffff << (32 - _prefix)) & 0xffffffff))
    _addr=$ip
    _net=$((ip & mask))
    _host=$((_net + 1))
    _bcast=$((_net | (~mask & 0xffffffff)))
    ((ip != _net && ip != _host && ip != _bcast)) ||
        { _engine_err "$1: the network, its first address ($(_int_to_ip $_host), this host's end of the fabric) and its broadcast address are taken"; return 1; }
}

# _engine_route_overlap NET PREFIX: prints a host route overlapping the subnet, if any.
_engine_route_overlap() {
    local net=$1 prefix=$2 dst rnet rprefix common mask
    while read -r dst _; do
        [[ "$dst" == default ]] && continue
        [[ "$dst" == */* ]] || dst="$dst/32"
        rnet=$(_ip_to_int "${dst%/*}")
        rprefix=${dst#*/}
        common=$((prefix < rprefix ? prefix : rprefix))
        mask=$(((0xffffffff << (32 - common)) & 0xffffffff))
        if (((net & mask) == (rnet & mask))); then
            echo "$dst"
            return 0
        fi
    done < <(ip -4 route show table main)
}

engine_check() {
    local tool missing=()
    for tool in dockerd docker ip nsenter unshare mount sleep; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || { _engine_err "missing: ${missing[*]}"; return 1; }
    ((EUID == 0)) || { _engine_err "needs root (network namespaces, a dockerd)"; return 1; }
}

engine_socket() { _engine_name_ok "$1" && echo "unix://$(_engine_dir "$1")/docker.sock"; }

engine_address() {
    _engine_name_ok "$1" || return 1
    local f; f="$(_engine_dir "$1")/address"
    [[ -f "$f" ]] || { _engine_err "engine $1 does not exist"; return 1; }
    local a; a="$(cat "$f")"
    echo "${a%/*}"
}

engine_docker() {
    local name="$1"; shift
    _engine_name_ok "$name" || return 1
    docker -H "$(engine_socket "$name")" "$@"
}

engine_exec() {
    local name="$1"; shift
    _engine_name_ok "$name" || return 1
    ip netns exec "hfe-$name" "$@"
}

engine_list() {
    local d
    for d in "$hyperfake_engines_dir"/*/; do
        [[ -f "$d/address" ]] && basename "$d"
    done
    return 0
}

# _engine_fabric_up NET PREFIX: the fabric of the subnet, created if missing. Prints its netns.
_engine_fabric_up() {
    local net=$1 prefix=$2 hex ns host_if
    hex=$(printf '%08x' "$net")
    ns="hff-$hex"
    host_if="hff$hex"
    if ip netns list | grep -qw "^$ns"; then
        echo "$ns"
        return 0
    fi
    local overlap
    overlap="$(_engine_route_overlap "$net" "$prefix")"
    [[ -z "$overlap" ]] ||
        { _engine_err "subnet $(_int_to_ip "$net")/$prefix overlaps this host's route $overlap: pick another"; return 1; }
    ip netns add "$ns" || return 1
    {
        ip -n "$ns" link set lo up &&
            ip -n "$ns" link add br0 type bridge &&
            ip -n "$ns" link set br0 up &&
            ip link add "$host_if" type veth peer name host netns "$ns" &&
            ip -n "$ns" link set host master br0 up &&
            ip addr add "$(_int_to_ip $((net + 1)))/$prefix" dev "$host_if" &&
            ip link set "$host_if" up
    } || { _engine_err "cannot set up fabric $ns"; ip netns del "$ns" 2>/dev/null; ip link del "$host_if" 2>/dev/null; return 1; }
    echo "$ns"
}

# _engine_fabric_down NS: removes the fabric when no engine uses it any more.
_engine_fabric_down() {
    local ns=$1
    ip netns list | grep -qw "^$ns" || return 0
    # Ports other than br0 and the host's: engines still attached.
    if ip -n "$ns" -o link show master br0 2>/dev/null | grep -v ' host@' | grep -q .; then
        return 0
    fi
    # The host's veth first (its peer goes with it at once; deleting the
    # namespace would take it down only asynchronously).
    ip link del "hff${ns#hff-}" 2>/dev/null || true
    ip netns del "$ns"
}

_engine_pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

_engine_read_pid() { [[ -f "$1" ]] && cat "$1" 2>/dev/null || true; }

# _engine_dockerd_start NAME: starts dockerd (which starts its containerd) inside
# the engine's namespaces and waits until it answers (60 s).
_engine_dockerd_start() {
    local name=$1 dir holder
    dir="$(_engine_dir "$name")"
    holder="$(_engine_read_pid "$dir/holder.pid")"
    _engine_pid_alive "$holder" || { _engine_err "engine $name: its namespace holder is gone"; return 1; }
    rm -f "$dir/dockerd.pid" "$dir/docker.sock"
    # setsid: no signal of the caller's terminal or process group reaches it.
    # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: see the top of this file.
    setsid nsenter --target "$holder" --mount --uts --net -- \
        env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd --config-file "$dir/daemon.json" >>"$dir/dockerd.log" 2>&1 </dev/null &
    echo $! >"$dir/dockerd.launch.pid"
    disown $!  # no "Killed" job notice in the caller when it is stopped
    local deadline=$((SECONDS + 60))
    until docker -H "unix://$dir/docker.sock" info >/dev/null 2>&1; do
        if ! _engine_pid_alive "$(_engine_read_pid "$dir/dockerd.launch.pid")"; then
            _engine_err "dockerd of engine $name exited while starting; the end of $dir/dockerd.log:"
            tail -n 15 "$dir/dockerd.log" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            _engine_err "dockerd of engine $name did not answer within 60 s (log: $dir/dockerd.log)"
            return 1
        fi
        sleep 0.3
    done
}

# _engine_daemons_stop NAME SIGNAL: stops dockerd and the containerd it started.
_engine_daemons_stop() {
    local name=$1 signal=$2 dir pid cpid
    dir="$(_engine_dir "$name")"
    pid="$(_engine_read_pid "$dir/dockerd.launch.pid")"
    cpid="$(_engine_read_pid "$dir/exec/containerd/containerd.pid")"
    if _engine_pid_alive "$pid"; then
        kill -"$signal" "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + hyperfake_engine_stop_seconds))
        while _engine_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        if _engine_pid_alive "$pid"; then
            _engine_err "dockerd of engine $name ignored SIG$signal for ${hyperfake_engine_stop_seconds} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    # dockerd stops its containerd on a clean exit; a crash leaves it running.
    if [[ "$signal" == KILL ]] && _engine_pid_alive "$cpid"; then
        kill -KILL "$cpid" 2>/dev/null || true
    elif _engine_pid_alive "$cpid"; then
        kill -TERM "$cpid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while _engine_pid_alive "$cpid" && ((SECONDS < deadline)); do sleep 0.2; done
        _engine_pid_alive "$cpid" && kill -KILL "$cpid" 2>/dev/null
    fi
    return 0
}

engine_start() {
    local name="${1:-}" cidr="${2:-}"
    _engine_name_ok "$name" || return 1
    engine_check || return 1
    local _addr _prefix _net _host _bcast
    _engine_parse_cidr "$cidr" || return 1
    local dir ns="hfe-$name"
    dir="$(_engine_dir "$name")"
    if [[ -e "$dir" ]] || ip netns list | grep -qw "^$ns"; then
        _engine_err "engine $name exists ($dir, netns $ns): engine_stop $name first"
        return 1
    fi
    local other
    for other in "$hyperfake_engines_dir"/*/address; do
        [[ -f "$other" && "$(cat "$other")" == "${cidr%/*}/"* ]] || continue
        _engine_err "address ${cidr%/*} is taken by engine $(basename "$(dirname "$other")")"
        return 1
    done
    mkdir -p "$dir" && chmod 700 "$dir" || return 1
    echo "$cidr" >"$dir/address"
    local fabric
    fabric="$(_engine_fabric_up "$_net" "$_prefix")" || { engine_stop "$name"; return 1; }
    echo "$fabric" >"$dir/fabric"
    {
        ip netns add "$ns" &&
            ip -n "$ns" link set lo up &&
            ip -n "$fabric" link add "e-$name" type veth peer name eth0 netns "$ns" &&
            ip -n "$fabric" link set "e-$name" master br0 up &&
            ip -n "$ns" addr add "$cidr" dev eth0 &&
            ip -n "$ns" link set eth0 up &&
            ip -n "$ns" route add default via "$(_int_to_ip "$_host")"
    } || { _engine_err "cannot set up the network of engine $name"; engine_stop "$name"; return 1; }

    cat >"$dir/daemon.json" <<JSON
{
  "data-root": "$dir/data",
  "exec-root": "$dir/exec",
  "pidfile": "$dir/dockerd.pid",
  "hosts": ["unix://$dir/docker.sock"],
  "storage-driver": "${ENGINE_STORAGE_DRIVER:-overlay2}",
  "containerd-namespace": "hfe-$name",
  "containerd-plugins-namespace": "hfe-$name-plugins",
  "cgroup-parent": "/hfe-$name",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"},
  "shutdown-timeout": 15,
  "labels": ["hyperfake.managed=true", "hyperfake.engine=$name"]
}
JSON

    # The namespace holder: private mounts, a sysfs of this network namespace
    # (the host's cgroup hierarchies bound back in), an empty /run/containerd,
    # the hostname. Prints "ready" once set up, then sleeps until engine_stop.
    mkdir -p "$dir/cgroup-keep"
    local setup
    # shellcheck disable=SC2016 # expanded by the inner shell
    setup='set -e
        mount --rbind /sys/fs/cgroup "$1/cgroup-keep"
        mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
        mount --rbind "$1/cgroup-keep" /sys/fs/cgroup
        umount -l "$1/cgroup-keep"
        mkdir -p /run/containerd
        mount -t tmpfs -o mode=0711 hfe-containerd /run/containerd
        hostname "$2"
        echo $$ >"$1/holder.pid"
        echo ready >"$1/holder.ready"
        exec sleep infinity'
    # nsenter, not `ip netns exec`: that would mount the new sysfs first, hiding
    # the cgroup hierarchies this binds back in.
    setsid nsenter --net="/run/netns/$ns" unshare --mount --uts --propagation private -- \
        sh -c "$setup" holder "$dir" "$name" >"$dir/holder.log" 2>&1 </dev/null &
    local launched=$!
    disown $!
    local deadline=$((SECONDS + 10))
    until [[ -f "$dir/holder.ready" ]]; do
        if ! _engine_pid_alive "$launched" || ((SECONDS >= deadline)); then
            _engine_err "engine $name: setting up its namespaces failed: $(cat "$dir/holder.log" 2>/dev/null)"
            engine_stop "$name"
            return 1
        fi
        sleep 0.1
    done
    _engine_dockerd_start "$name" || { engine_stop "$name"; return 1; }
}

engine_restart() {
    local name="${1:-}" signal=TERM
    _engine_name_ok "$name" || return 1
    [[ "${2:-}" != --kill ]] || signal=KILL
    [[ -f "$(_engine_dir "$name")/address" ]] || { _engine_err "engine $name does not exist"; return 1; }
    _engine_daemons_stop "$name" "$signal"
    _engine_dockerd_start "$name"
}

# _engine_kill_cgroups NAME: kills every process left in the engine's cgroups
# (containers whose daemons are gone) and removes the cgroups, deepest first.
_engine_kill_cgroups() {
    local name=$1 root d pid
    local roots=()
    mapfile -t roots < <(find /sys/fs/cgroup -maxdepth 2 -type d -name "hfe-$name" 2>/dev/null)
    for root in "${roots[@]}"; do
        while read -r pid; do
            [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
        done < <(find "$root" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    sleep 0.2
    for root in "${roots[@]}"; do
        find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
}

engine_stop() {
    local name="${1:-}"
    _engine_name_ok "$name" || return 1
    local dir ns="hfe-$name" fabric holder
    dir="$(_engine_dir "$name")"
    fabric="$(cat "$dir/fabric" 2>/dev/null || true)"
    holder="$(_engine_read_pid "$dir/holder.pid")"
    _engine_daemons_stop "$name" TERM
    # What the daemons left: shims, docker-proxy, containers.
    local pid
    if ip netns list | grep -qw "^$ns"; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            [[ "$pid" == "$holder" ]] || kill -KILL "$pid" 2>/dev/null
        done
    fi
    _engine_kill_cgroups "$name"
    if _engine_pid_alive "$holder"; then
        kill -KILL "$holder" 2>/dev/null
        local deadline=$((SECONDS + 5))
        while _engine_pid_alive "$holder" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    # The fabric's port first: a namespace is torn down asynchronously, after
    # `ip netns del` returns, and its veth ends with it.
    [[ -z "$fabric" ]] || ip -n "$fabric" link del "e-$name" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    [[ -z "$fabric" ]] || _engine_fabric_down "$fabric"
    if [[ -d "$dir" ]]; then
        # Mounts live in the engine's own mount namespace, gone with its last
        # process; never delete through a mount that is still visible here.
        if grep -qF " $dir/" /proc/self/mountinfo; then
            _engine_err "mounts under $dir remain; not deleting it"
            return 1
        fi
        rm -rf "$dir"
    fi
    return 0
}
