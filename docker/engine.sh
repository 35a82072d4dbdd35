#!/usr/bin/env bash
# A Docker engine for building and testing the images on a machine that has none running.
#
#   docker/engine.sh host      print the DOCKER_HOST of a reachable engine (exit 1 if none)
#   docker/engine.sh start     use a reachable engine, or install (apt: docker.io) and start one
#   docker/engine.sh stop      stop the engine that `start` started (never any other)
#   docker/engine.sh status    say which engine is reachable, if any
#
# The engine this script starts is the project's own: its data root, exec root, socket and log
# live under NOA_DOCKER_ROOT (default /var/lib/noa-docker, kept between runs so the base image
# and the layer cache survive) and NOA_DOCKER_RUN (default /run/noa-docker). Networking is off
# in the engine (--iptables=false --bridge=none): containers and builds use --network host.
# Starting it needs root (apt-get, dockerd).
set -euo pipefail

DOCKER_ROOT=${NOA_DOCKER_ROOT:-/var/lib/noa-docker}
DOCKER_RUN=${NOA_DOCKER_RUN:-/run/noa-docker}
SOCK="$DOCKER_RUN/docker.sock"
PIDFILE="$DOCKER_RUN/dockerd.pid"
LOG="$DOCKER_ROOT/dockerd.log"
START_TIMEOUT_S=${NOA_DOCKER_START_TIMEOUT_S:-90}

die() { echo "engine.sh: error: $*" >&2; exit 1; }

reachable() {  # reachable [DOCKER_HOST] -> 0 when `docker info` answers there
    if [[ -n "${1:-}" ]]; then
        DOCKER_HOST="$1" timeout 20 docker info >/dev/null 2>&1
    else
        timeout 20 docker info >/dev/null 2>&1
    fi
}

# The engine to use, in order: DOCKER_HOST as set, the project's own socket, the default socket.
find_host() {
    command -v docker >/dev/null 2>&1 || return 1
    if [[ -n "${DOCKER_HOST:-}" ]]; then
        reachable "$DOCKER_HOST" && { echo "$DOCKER_HOST"; return 0; }
        return 1
    fi
    if [[ -S "$SOCK" ]] && reachable "unix://$SOCK"; then echo "unix://$SOCK"; return 0; fi
    if [[ -S /var/run/docker.sock ]] && reachable "unix:///var/run/docker.sock"; then
        echo "unix:///var/run/docker.sock"; return 0
    fi
    return 1
}

install_engine() {
    local need=()
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    command -v docker >/dev/null 2>&1 || need+=(docker.io)
    ((${#need[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "dockerd is not installed and installing it needs root (apt-get install docker.io)"
    command -v apt-get >/dev/null 2>&1 || die "dockerd is not installed and there is no apt-get to install it"
    echo "engine.sh: installing docker.io with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
        || die "apt-get install docker.io failed"
}

start() {
    local host
    if host=$(find_host); then
        echo "engine.sh: using the engine at $host" >&2
        echo "$host"
        return 0
    fi
    [[ -z "${DOCKER_HOST:-}" ]] \
        || die "DOCKER_HOST=$DOCKER_HOST is set but no engine answers there; unset it to let this script start one"
    install_engine
    [[ $(id -u) -eq 0 ]] || die "starting dockerd needs root"
    if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        die "a dockerd started by this script (pid $(cat "$PIDFILE")) runs but does not answer on $SOCK; stop it with: $0 stop"
    fi
    mkdir -p "$DOCKER_ROOT/data" "$DOCKER_RUN/exec"
    rm -f "$PIDFILE" "$SOCK"
    echo "engine.sh: starting dockerd (data root $DOCKER_ROOT/data, socket $SOCK, log $LOG)" >&2
    # setsid + nohup: the engine outlives this script (the build and the tests use it after).
    setsid nohup dockerd \
        --storage-driver=overlay2 --iptables=false --ip-masq=false --bridge=none \
        --data-root "$DOCKER_ROOT/data" --exec-root "$DOCKER_RUN/exec" \
        --pidfile "$PIDFILE" -H "unix://$SOCK" >"$LOG" 2>&1 </dev/null &
    local pid=$! waited=0
    until reachable "unix://$SOCK"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "engine.sh: dockerd exited; the end of its log ($LOG):" >&2
            tail -n 40 "$LOG" >&2 || true
            die "the Docker engine could not start"
        fi
        if ((waited >= START_TIMEOUT_S)); then
            echo "engine.sh: dockerd did not answer within ${START_TIMEOUT_S} s; the end of its log ($LOG):" >&2
            tail -n 40 "$LOG" >&2 || true
            die "the Docker engine did not come up"
        fi
        sleep 1; waited=$((waited + 1))
    done
    echo "engine.sh: dockerd $(DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}') up in ${waited} s (pid $pid)" >&2
    echo "unix://$SOCK"
}

stop() {
    if [[ ! -f "$PIDFILE" ]]; then
        echo "engine.sh: no engine started by this script ($PIDFILE absent)" >&2
        return 0
    fi
    local pid; pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "engine.sh: dockerd (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "engine.sh: stopped dockerd (pid $pid)" >&2
    fi
    rm -f "$PIDFILE"
    # A dockerd that was killed leaves its mounts (data root, network namespace) behind.
    local mnt
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || echo "engine.sh: warning: cannot unmount $mnt" >&2
    done < <(awk -v a="$DOCKER_ROOT" -v b="$DOCKER_RUN" \
                 'index($2, a "/") == 1 || index($2, b "/") == 1 { print $2 }' /proc/mounts | sort -r)
}

case "${1:-}" in
    host) find_host || { echo "engine.sh: no Docker engine reachable" >&2; exit 1; } ;;
    start) start ;;
    stop) stop ;;
    status)
        if host=$(find_host); then echo "engine at $host: $(DOCKER_HOST=$host docker version --format 'server {{.Server.Version}}')"
        else echo "no Docker engine reachable"; exit 1; fi ;;
    *) echo "usage: $0 host|start|stop|status" >&2; exit 2 ;;
esac
