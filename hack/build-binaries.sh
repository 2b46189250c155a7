#!/usr/bin/env bash
# Build the local control plane's binaries from their Go modules into a cache outside the
# repository, keyed by version, so that only the first run on a machine pays for the build.
#
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from k8s.io/kubernetes.
# That module points its staging modules (k8s.io/api, k8s.io/client-go, ...) at local folders
# with replace directives, and Go ignores a dependency's replace directives, so a wrapper module
# pins each staging module to the matching v0.x tag. The list of staging modules is read from
# the go.mod that the module proxy serves, so a new release needs only a new version below.
#
# helm comes from helm.sh/helm/v3, which the chart tests and `make` targets run.
#
# Usage: hack/build-binaries.sh [etcd|kwok|kubernetes|helm ...]; with no argument it builds all.
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CACHE_DIR="${APISERVICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apiservice-operator}"

# The staging modules carry the Kubernetes minor version as v0.<minor>.<patch>.
STAGING_VERSION="v0${KUBE_VERSION#v1}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Print the folder that contains a component's binaries, one folder a version.
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

build_helm() {
  local out; out="$(bin_dir helm "$HELM_VERSION")"
  if [[ -x "$out/helm" ]]; then
    log "helm $HELM_VERSION is cached in $out"
    return
  fi
  local src="$CACHE_DIR/src/helm-$HELM_VERSION"
  mkdir -p "$src" "$out"
  cd "$src"
  # helm's go.mod has no replace directives, so requiring the release is enough.
  printf 'module local/helm-build\n\ngo 1.26\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" > go.mod
  rm -f go.sum
  timed "helm $HELM_VERSION module graph" go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

  # The variables that upstream's Makefile stamps: the release, and the Kubernetes version that
  # `helm template` and `helm lint` assume, which it derives from the k8s.io/client-go release.
  local client_go; client_go="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
  local k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
  local flags=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  timed "helm $HELM_VERSION" env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$flags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm
  mv "$out/helm.tmp" "$out/helm"
}

main() {
  local start=$SECONDS
  local components=("$@")
  if [[ ${#components[@]} -eq 0 ]]; then
    components=(etcd kwok kubernetes helm)
  fi
  local component
  for component in "${components[@]}"; do
    case "$component" in
      etcd | kwok | kubernetes | helm) "build_$component" ;;
      *)
        log "unknown component '$component': expected etcd, kwok, kubernetes or helm"
        exit 2
        ;;
    esac
  done
  log "${components[*]} ready in $((SECONDS - start))s under $CACHE_DIR/bin"
}

main "$@"
