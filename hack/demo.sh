#!/usr/bin/env bash
# The main job, end to end on a fresh machine: start the local cluster, install the CRD, run the
# operator in the background, apply the minimal example and wait until it is Ready.
# `make cluster-down` stops the operator together with the cluster.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$HACK_DIR")"
# shellcheck source=hack/versions.env
source "$HACK_DIR/versions.env"
CACHE_DIR="${APISERVICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apiservice-operator}"
STATE_DIR="${CLUSTER_DIR:-$ROOT_DIR/.cluster}"
KUBECTL="$CACHE_DIR/bin/kubernetes-$KUBE_VERSION/kubectl"
PYTHON="${VENV_PYTHON:-$ROOT_DIR/.venv/bin/python}"
NAMESPACE="${DEMO_NAMESPACE:-demo}"
# Seconds to wait for the sample ApiService to become Ready.
READY_TIMEOUT="${DEMO_READY_TIMEOUT:-180}"

log() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

start=$SECONDS
"$HACK_DIR/cluster.sh" up >/dev/null
export KUBECONFIG="$STATE_DIR/kubeconfig"

log "installing the ApiService CRD"
"$KUBECTL" apply --server-side --field-manager apiservice-demo \
  -f "$ROOT_DIR/crds/apiservice.dev_apiservices.yaml" >/dev/null
"$KUBECTL" wait --for=condition=Established --timeout=60s crd/apiservices.apiservice.dev >/dev/null

pid_file="$STATE_DIR/pids/operator"
if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  log "the operator already runs (pid $(cat "$pid_file"))"
else
  log "starting the operator; its log is $STATE_DIR/logs/operator.log"
  PYTHONPATH="$ROOT_DIR/operator" "$PYTHON" -m apiservice_operator --log-format json \
    --metrics-port 0 --health-port 0 >"$STATE_DIR/logs/operator.log" 2>&1 &
  echo $! >"$pid_file"
fi

log "applying examples/minimal.yaml in namespace $NAMESPACE"
"$KUBECTL" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" apply --server-side --field-manager apiservice-demo -n "$NAMESPACE" \
  -f "$ROOT_DIR/examples/minimal.yaml" >/dev/null

log "waiting up to ${READY_TIMEOUT}s for apisvc/orders to become Ready"
if ! "$KUBECTL" wait --for=condition=Ready --timeout="${READY_TIMEOUT}s" -n "$NAMESPACE" apisvc/orders >/dev/null; then
  log "apisvc/orders is not Ready; its status and the operator's last log lines follow"
  "$KUBECTL" get apisvc/orders -n "$NAMESPACE" -o yaml >&2 || true
  tail -n 20 "$STATE_DIR/logs/operator.log" >&2 || true
  exit 1
fi
log "Ready after $((SECONDS - start))s in all"

"$KUBECTL" get apisvc -n "$NAMESPACE"
echo
"$KUBECTL" get deployments,services,persistentvolumeclaims,configmaps,secrets -n "$NAMESPACE" \
  -l apiservice.dev/name=orders
echo
echo "Try: export KUBECONFIG=$KUBECONFIG; $KUBECTL get apisvc -A"
