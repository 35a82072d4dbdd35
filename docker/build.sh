#!/usr/bin/env bash
# Build the CPU image of noa-core on a machine with no container registry, for humans and CI alike.
#
#   docker/build.sh [--engine] [--rebuild-base] [--refresh-wheels] [--no-wheelhouse]
#   docker/build.sh --print-mirror
#
# Phases, each timed:
#   engine      a reachable Docker engine; with --engine (the default when CI=true) one is
#               installed (apt: docker.io) and started if none answers (docker/engine.sh)
#   base        BASE_IMAGE made with debootstrap (Debian minbase + python3, venv, pip, CA
#               certificates) from the mirror in this machine's apt sources, then `docker import`;
#               skipped when the image exists (--rebuild-base forces it)
#   wheelhouse  docker/wheelhouse/ filled on the host with `pip download` (the host's pip
#               configuration applies) of the requirements read from pyproject.toml, for the base
#               image's Python and platform, with torch pinned to the CPU build; skipped when the
#               requirements and the target did not change (--refresh-wheels forces it)
#   build       `docker build --network host -f docker/Dockerfile`, tagged IMAGE and
#               noa-core:VERSION-cpu, the wheelhouse served on 127.0.0.1 (NOA_WHEELHOUSE_PORT,
#               38731) as WHEELHOUSE_URL; the layer cache keeps the dependency layer while only
#               the code changes
#
# Environment: NOA_IMAGE (noa-core:cpu), NOA_BASE_IMAGE (noa-base:bookworm), NOA_BASE_SUITE
# (bookworm), NOA_DEBIAN_MIRROR (default: read from apt's sources), NOA_TORCH_SPEC
# (torch==2.13.0), NOA_EXTRAS (optional-dependency groups, comma-separated), NOA_TIMINGS_FILE
# (append "image: PHASE SECONDS" lines there, for CI's summary). Ends with the DOCKER_HOST to
# use (also: docker/engine.sh host). Containers of this image run with --network host (the engine has no bridge network).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

IMAGE=${NOA_IMAGE:-noa-core:cpu}
BASE_IMAGE=${NOA_BASE_IMAGE:-noa-base:bookworm}
SUITE=${NOA_BASE_SUITE:-bookworm}
TORCH_SPEC=${NOA_TORCH_SPEC:-torch==2.13.0}
EXTRAS=${NOA_EXTRAS:-}
WHEELHOUSE=docker/wheelhouse
APT_DIR=${NOA_APT_DIR:-/etc/apt}

want_engine=0; [[ "${CI:-}" == "true" ]] && want_engine=1
rebuild_base=0; refresh_wheels=0; use_wheelhouse=1

die() { echo "build.sh: error: $*" >&2; exit 1; }
say() { echo "build.sh: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# --- the Debian mirror, read from this machine's apt sources (never written in the repo) ------
# Prints the first URI of an enabled `deb` source serving SUITE (deb822 *.sources first, then
# one-line *.list); failing that, any enabled `deb` source of a main suite (not security).
apt_mirror() {
    local suite=$1 files=() f
    for f in "$APT_DIR"/sources.list.d/*.sources "$APT_DIR"/sources.list "$APT_DIR"/sources.list.d/*.list; do
        [[ -f "$f" && -r "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    local pass
    for pass in exact main; do
        awk -v suite="$suite" -v pass="$pass" '
            function fits(suites,   n, i, s, parts) {
                n = split(suites, parts, /[ \t]+/)
                for (i = 1; i <= n; i++) {
                    s = parts[i]; if (s == "") continue
                    if (pass == "exact" && s == suite) return 1
                    if (pass == "main" && s !~ /security|\/updates/) return 1
                }
                return 0
            }
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*no/ && uris != "" && fits(suites)) {
                    split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
                }
                types = ""; uris = ""; suites = ""; enabled = ""
            }
            FNR == 1 { if (deb822) flush(); deb822 = (FILENAME ~ /\.sources$/) }
            deb822 && /^[ \t]*$/ { flush(); next }
            deb822 && /^[ \t]*#/ { next }
            deb822 && tolower($1) == "types:" { sub(/^[^:]*:[ \t]*/, ""); types = $0; next }
            deb822 && tolower($1) == "uris:" { sub(/^[^:]*:[ \t]*/, ""); uris = $0; next }
            deb822 && tolower($1) == "suites:" { sub(/^[^:]*:[ \t]*/, ""); suites = $0; next }
            deb822 && tolower($1) == "enabled:" { sub(/^[^:]*:[ \t]*/, ""); enabled = tolower($0); next }
            deb822 { next }
            /^[ \t]*deb[ \t]/ {
                line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
                if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
                n = split(line, f, /[ \t]+/)
                if (n >= 2 && fits(f[2])) { print f[1]; found = 1; exit }
            }
            END { if (!found && deb822) flush(); if (!found) exit 1 }
        ' "${files[@]}" && return 0
    done
    return 1
}

mirror() {
    if [[ -n "${NOA_DEBIAN_MIRROR:-}" ]]; then echo "$NOA_DEBIAN_MIRROR"; return 0; fi
    local m
    m=$(apt_mirror "$SUITE" | head -n 1) || true
    [[ -n "$m" ]] || die "no Debian mirror found in $APT_DIR/sources.list{,.d/*} for suite $SUITE; set NOA_DEBIAN_MIRROR=URL"
    echo "${m%/}"
}

while (($#)); do
    case "$1" in
        --engine) want_engine=1 ;;
        --no-engine) want_engine=0 ;;
        --rebuild-base) rebuild_base=1 ;;
        --refresh-wheels) refresh_wheels=1 ;;
        --no-wheelhouse) use_wheelhouse=0 ;;
        --print-mirror) mirror; exit 0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

# --- timing ------------------------------------------------------------------------------------
declare -a PHASES=()
phase_t0=0; phase_name=""
phase_begin() { phase_name=$1; phase_t0=$(date +%s); echo "==> [$phase_name] $2" >&2; }
phase_end() {
    local dt=$(( $(date +%s) - phase_t0 )) note=${1:-}
    PHASES+=("$(printf '%-11s %5d s  %s' "$phase_name" "$dt" "$note")")
    echo "==> [$phase_name] ${dt} s${note:+ ($note)}" >&2
    if [[ -n "${NOA_TIMINGS_FILE:-}" ]]; then
        echo "image: $phase_name $dt${note:+ ($note)}" >>"$NOA_TIMINGS_FILE"
    fi
}

command -v python3 >/dev/null || die "python3 is needed on the host"

# --- engine ------------------------------------------------------------------------------------
phase_begin engine "a Docker engine"
if ((want_engine)); then
    DOCKER_HOST=$(bash docker/engine.sh start) || die "no Docker engine (see the messages above)"
else
    DOCKER_HOST=$(bash docker/engine.sh host 2>/dev/null) \
        || die "no Docker engine reachable: start one, or run with --engine (installs docker.io and starts dockerd; needs root)"
fi
export DOCKER_HOST
# The classic builder when the CLI has no buildx plugin (Debian's docker.io has none).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
phase_end "$DOCKER_HOST"

# --- base image --------------------------------------------------------------------------------
phase_begin base "base image $BASE_IMAGE"
if ((rebuild_base == 0)) && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    phase_end "cached"
else
    [[ $(id -u) -eq 0 ]] || die "making the base image with debootstrap needs root (or provide $BASE_IMAGE)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
            || die "apt-get install debootstrap failed"
    fi
    MIRROR=$(mirror)
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/noa-rootfs.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" EXIT
    say "debootstrap $SUITE from the mirror in apt's sources into $rootfs"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1; then
        tail -n 30 "$rootfs.log" >&2
        tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
        die "debootstrap failed (log: $rootfs.log)"
    fi
    rm -f "$rootfs.log"
    # Smaller and free of this machine's traces: no package lists, caches, docs or logs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
           "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -C "$rootfs" -c . \
        | docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            --message "debootstrap --variant=minbase $SUITE + python3 python3-venv python3-pip ca-certificates" \
            - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"; trap - EXIT
    phase_end "debootstrap $SUITE, $(docker run --rm --network none "$BASE_IMAGE" python3 --version)"
fi

# --- wheelhouse --------------------------------------------------------------------------------
# pip download of every requirement as a wheel for the image's platform. A pure-Python package
# published only as an sdist (kfp-server-api is one) is built into a wheel here first: pip names
# it in "No matching distribution found for ...", and the retry finds the wheel via --find-links.
# A package whose build gives a platform wheel is refused (it would be the host's, not the
# image's).
download_wheels() {
    local reqs=$1 build_reqs=$2 cons=$3; shift 3
    local out missing built attempt
    for ((attempt = 1; attempt <= 8; attempt++)); do
        if out=$(python3 -m pip download --quiet --progress-bar off --dest "$WHEELHOUSE" \
                --find-links "$WHEELHOUSE" "$@" -r "$reqs" -r "$build_reqs" -c "$cons" 2>&1); then
            return 0
        fi
        missing=$(grep -oP 'No matching distribution found for \K\S+' <<<"$out" | head -n 1)
        if [[ -z "$missing" ]]; then
            printf '%s\n' "$out" >&2
            die "pip download failed: every requirement needs a wheel for $* (see pip's message above)"
        fi
        say "no wheel of $missing for the image's platform: building one from its sdist"
        built=$(mktemp -d)
        python3 -m pip wheel --quiet --no-deps --wheel-dir "$built" "$missing" -c "$cons" \
            || die "cannot build a wheel of $missing"
        if compgen -G "$built/*.whl" >/dev/null && ! compgen -G "$built/*-none-any.whl" >/dev/null; then
            die "$missing builds a platform-specific wheel ($(ls "$built")): provide a wheel for the image's platform"
        fi
        mv "$built"/*.whl "$WHEELHOUSE"/ && rmdir "$built"
    done
    die "pip download still failing after building $((attempt - 1)) sdists"
}

phase_begin wheelhouse "wheels for the image in $WHEELHOUSE"
mkdir -p "$WHEELHOUSE"
if ((use_wheelhouse == 0)); then
    rm -f "$WHEELHOUSE"/*.whl "$WHEELHOUSE/.stamp"
    phase_end "off: pip in the build uses the index"
else
    # The target is the base image's own Python and C library, whatever the host runs.
    read -r py_ver glibc arch < <(docker run --rm --network none "$BASE_IMAGE" python3 -c \
        'import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.libc_ver()[1], platform.machine())') \
        || die "cannot read the Python version of $BASE_IMAGE"
    [[ "$glibc" =~ ^2\.([0-9]+)$ ]] || die "unexpected C library in $BASE_IMAGE: '$glibc'"
    glibc_minor=${BASH_REMATCH[1]}
    abi="cp${py_ver/./}"
    target=(--only-binary=:all: --python-version "$py_ver" --implementation cp --abi "$abi")
    for ((v = glibc_minor; v >= 17; v--)); do target+=(--platform "manylinux_2_${v}_${arch}"); done
    target+=(--platform "manylinux2014_${arch}" --platform "manylinux2010_${arch}" --platform "manylinux1_${arch}")

    reqs=$(mktemp); build_reqs=$(mktemp); cons=$(mktemp)
    python3 docker/pyproject_requirements.py pyproject.toml --extras "$EXTRAS" >"$reqs"
    python3 docker/pyproject_requirements.py pyproject.toml --build-system >"$build_reqs"
    printf '%s\n' "$TORCH_SPEC" >"$cons"
    stamp=$(cat "$reqs" "$build_reqs" "$cons" <(echo "$abi $glibc $arch") | sha256sum | cut -d' ' -f1)
    if ((refresh_wheels == 0)) && [[ -f "$WHEELHOUSE/.stamp" && "$(cat "$WHEELHOUSE/.stamp")" == "$stamp" ]] \
            && compgen -G "$WHEELHOUSE/*.whl" >/dev/null; then
        rm -f "$reqs" "$build_reqs" "$cons"
        phase_end "cached: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels"
    else
        rm -f "$WHEELHOUSE"/*.whl "$WHEELHOUSE/.stamp"
        say "pip download for cp${py_ver/./} glibc $glibc $arch: $(paste -sd' ' "$reqs") + build: $(paste -sd' ' "$build_reqs"); constraint: $TORCH_SPEC"
        download_wheels "$reqs" "$build_reqs" "$cons" "${target[@]}"
        rm -f "$reqs" "$build_reqs" "$cons"
        torch_whl=$(find "$WHEELHOUSE" -name 'torch-*.whl' -printf '%f\n' | head -n 1)
        [[ -n "$torch_whl" ]] || die "no torch wheel in $WHEELHOUSE"
        # A CUDA torch build pulls its CUDA runtime as nvidia-* wheels: several GB in a CPU image.
        if compgen -G "$WHEELHOUSE/nvidia_*.whl" >/dev/null; then
            die "pip chose a CUDA build of torch ($torch_whl, with nvidia-* wheels) for the CPU image: make a CPU torch wheel visible to the host's pip (PIP_FIND_LINKS=DIR with it, or PIP_EXTRA_INDEX_URL=an index of CPU builds) and rerun with --refresh-wheels"
        fi
        echo "$stamp" >"$WHEELHOUSE/.stamp"
        phase_end "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1), $torch_whl"
    fi
fi

# --- image -------------------------------------------------------------------------------------
phase_begin build "image $IMAGE from docker/Dockerfile"
if ((use_wheelhouse)); then
    # The builder reads pyproject.toml from the build context: it must still be the one the
    # wheelhouse was filled from (someone may edit the checkout meanwhile).
    now=$(cat <(python3 docker/pyproject_requirements.py pyproject.toml --extras "$EXTRAS") \
              <(python3 docker/pyproject_requirements.py pyproject.toml --build-system) \
              <(printf '%s\n' "$TORCH_SPEC") <(echo "$abi $glibc $arch") | sha256sum | cut -d' ' -f1)
    [[ "$now" == "$stamp" ]] || die "pyproject.toml changed while the wheelhouse was filled; run docker/build.sh again"
fi
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
vcs_ref=$(git rev-parse HEAD 2>/dev/null || echo unknown)
wheel_args=()
if ((use_wheelhouse)); then
    # The wheelhouse is served on loopback for the build (--network host) rather than sent in the
    # build context: the context stays small and no wheel lands in any image layer.
    port=${NOA_WHEELHOUSE_PORT:-38731}
    python3 -m http.server --bind 127.0.0.1 --directory "$WHEELHOUSE" "$port" >/dev/null 2>&1 &
    server_pid=$!
    # shellcheck disable=SC2064  # expand now: the pid is fixed
    trap "kill $server_pid 2>/dev/null || true" EXIT
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null \
            || die "cannot serve the wheelhouse on 127.0.0.1:$port (in use? set NOA_WHEELHOUSE_PORT)"
        python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/', timeout=2)" \
            2>/dev/null && break
        sleep 0.2
    done
    wheel_args=(--build-arg "WHEELHOUSE_URL=http://127.0.0.1:$port/"
                --build-arg "WHEELHOUSE_STAMP=$(find "$WHEELHOUSE" -name '*.whl' -printf '%f\n' | sort | sha256sum | cut -c1-16)")
fi
docker build --network host --force-rm -f docker/Dockerfile \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "TORCH_SPEC=$TORCH_SPEC" \
    --build-arg "EXTRAS=$EXTRAS" \
    "${wheel_args[@]}" \
    --build-arg "VERSION=$version" \
    --build-arg "VCS_REF=$vcs_ref" \
    --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$IMAGE" -t "noa-core:$version-cpu" . \
    || die "docker build failed (see above)"
if ((use_wheelhouse)); then kill "$server_pid" 2>/dev/null || true; trap - EXIT; fi
# Images of earlier builds that no tag names any more (the engine's disk would only grow); the
# dependency layer is the runtime's parent, so its cache stays.
docker image prune --force >/dev/null || say "warning: docker image prune failed"
size_mb=$(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000 ))
phase_end "$size_mb MB"
if [[ -n "${NOA_TIMINGS_FILE:-}" ]]; then echo "image: size $size_mb MB" >>"$NOA_TIMINGS_FILE"; fi

echo "build.sh: phases" >&2
printf '  %s\n' "${PHASES[@]}" >&2
echo "build.sh: built $IMAGE ($size_mb MB); run it with:" >&2
echo "  DOCKER_HOST=$DOCKER_HOST docker run --rm --network host $IMAGE noa --help" >&2
