#!/usr/bin/env bash
# Build the local control plane's binaries from their Go modules into a cache outside the
# repository, keyed by version, so that only the first run on a machine pays for the build.
#
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from k8s.io/kubernetes.
# That module points its staging modules (k8s.io/api, k8s.io/client-go, ...) at local folders
# with replace directives, and Go ignores a dependency's replace directives, so a wrapper module
# pins each staging module to the matching v0.x tag. The list of staging modules is read from
# the go.mod that the module proxy serves, so a new release needs only a new version below.
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CACHE_DIR="${APISERVICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apiservice-operator}"

# The staging modules carry the Kubernetes minor version as v0.<minor>.<patch>.
STAGING_VERSION="v0${KUBE_VERSION#v1}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Print the folder that holds a component's binaries, one folder a version.
bin_dir() { printf '%s/bin/%s-%s\n' "$CACHE_DIR" "$1" "$2"; }

# Run a build step and report how long it took, so that a slow cold build shows progress.
timed() {
  local what="$1"; shift
  local start=$SECONDS
  log "building $what"
  "$@"
  log "built $what in $((SECONDS - start))s"
}

build_kubernetes() {
  local out; out="$(bin_dir kubernetes "$KUBE_VERSION")"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kube-scheduler" && -x "$out/kubectl" ]]; then
    log "kubernetes $KUBE_VERSION is cached in $out"
    return
  fi
  local src="$CACHE_DIR/src/kubernetes-$KUBE_VERSION"
  mkdir -p "$src" "$out"
  cd "$src"

  # Write the wrapper module: one requirement plus a replace directive for each staging module.
  local gomod
  gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  {
    printf 'module local/kubernetes-build\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$STAGING_VERSION" '{ printf "\t%s => %s %s\n", $1, $1, v }'
    printf ')\n'
  } > go.mod
  rm -f go.sum

  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local packages=()
  for cmd in "${commands[@]}"; do packages+=("k8s.io/kubernetes/cmd/$cmd@$KUBE_VERSION"); done
  # A package named without a version would be upgraded to the newest release.
  timed "kubernetes $KUBE_VERSION module graph" go get "${packages[@]}"

  # These are the variables that upstream's hack/lib/version.sh stamps, so /version is real.
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local major="${KUBE_VERSION#v}"; major="${major%%.*}"
  local minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  local flags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  for cmd in "${commands[@]}"; do
    timed "$cmd $KUBE_VERSION" go build -trimpath -ldflags "-s -w$flags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$out/$cmd.tmp" "$out/$cmd"
  done
}

build_etcd() {
  local out; out="$(bin_dir etcd "$ETCD_VERSION")"
  if [[ -x "$out/etcd" ]]; then
    log "etcd $ETCD_VERSION is cached in $out"
    return
  fi
  local src="$CACHE_DIR/src/etcd-$ETCD_VERSION"
  mkdir -p "$src" "$out"
  cd "$src"
  printf 'module local/etcd-build\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  rm -f go.sum
  timed "etcd $ETCD_VERSION module graph" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  timed "etcd $ETCD_VERSION" go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-$ETCD_VERSION" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/etcd.tmp" "$out/etcd"
}

build_kwok() {
  local out; out="$(bin_dir kwok "$KWOK_VERSION")"
  if [[ -x "$out/kwok" ]]; then
    log "kwok $KWOK_VERSION is cached in $out"
    return
  fi
  local src="$CACHE_DIR/src/kwok-$KWOK_VERSION"
  mkdir -p "$src" "$out"
  cd "$src"
  printf 'module local/kwok-build\n\ngo 1.26\n\nrequire sigs.k8s.io/kwok %s\n' "$KWOK_VERSION" > go.mod
  rm -f go.sum
  timed "kwok $KWOK_VERSION module graph" go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  timed "kwok $KWOK_VERSION" go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$out/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
  mv "$out/kwok.tmp" "$out/kwok"
}

main() {
  local start=$SECONDS
  build_etcd
  build_kwok
  build_kubernetes
  log "all binaries ready in $((SECONDS - start))s under $CACHE_DIR/bin"
}

main "$@"
