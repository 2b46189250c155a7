#!/usr/bin/env bash
# Run a local Kubernetes control plane on 127.0.0.1 for development and tests:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which keeps fake nodes
# Ready and makes their pods Running and Ready. No container runs and no kubelet exists.
#
#   hack/cluster.sh up       build the binaries if needed, start everything, write the kubeconfig
#   hack/cluster.sh down     stop every component and remove the cluster's state
#   hack/cluster.sh status   tell whether each component runs and the API server is ready
#   hack/cluster.sh restart COMPONENT
#                            stop one component and start it again with the same ports and
#                            data, as fault tests do to an API server or etcd
#
# State lives in .cluster/ (git-ignored): kubeconfig, certificates, etcd data, logs, pids.
# Every start is a new cluster on new random ports with new certificates.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$HACK_DIR")"
# shellcheck source=hack/versions.env
source "$HACK_DIR/versions.env"
CACHE_DIR="${APISERVICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apiservice-operator}"
STATE_DIR="${CLUSTER_DIR:-$ROOT_DIR/.cluster}"
KUBE_BIN="$CACHE_DIR/bin/kubernetes-$KUBE_VERSION"
ETCD_BIN="$CACHE_DIR/bin/etcd-$ETCD_VERSION"
KWOK_BIN="$CACHE_DIR/bin/kwok-$KWOK_VERSION"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# Processes started against the cluster, such as the operator of hack/demo.sh, stop with it.
CLIENTS=(operator)
# Seconds to wait for each component to become healthy before giving up.
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-90}"
NODE_NAME="kwok-node-0"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# Print a free TCP port on 127.0.0.1. The kernel picks it, so parallel clusters do not collide
# except in the short window before the component binds it.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pid_of() { cat "$STATE_DIR/pids/$1" 2>/dev/null || true; }

is_running() {
  local pid; pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# Report a component that failed to start with the tail of its log, stop the rest, and exit.
fail_start() {
  local component="$1" reason="$2"
  log "$component failed to start: $reason"
  log "last lines of $STATE_DIR/logs/$component.log:"
  tail -n 30 "$STATE_DIR/logs/$component.log" >&2 || true
  stop_all
  exit 1
}

# Start one component in the background with its output in its own log file.
launch() {
  local component="$1"; shift
  log "starting $component"
  "$@" >>"$STATE_DIR/logs/$component.log" 2>&1 &
  echo $! >"$STATE_DIR/pids/$component"
}

# Wait until a command succeeds, failing the start if the component exits or time runs out.
wait_healthy() {
  local component="$1"; shift
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    is_running "$component" || fail_start "$component" "the process exited"
    ((SECONDS < deadline)) || fail_start "$component" "not healthy after ${START_TIMEOUT}s"
    sleep 0.5
  done
  log "$component is healthy"
}

# Issue a certificate signed by the cluster CA. $2 is the subject; $3, when given, the SANs.
issue_cert() {
  local name="$1" subject="$2" sans="${3:-}"
  local pki="$STATE_DIR/pki"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" \
    -out "$pki/$name.csr" 2>/dev/null
  local ext="$pki/$name.ext"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$ext"
  if [[ -n "$sans" ]]; then
    printf 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >>"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >>"$ext"
  fi
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
}

generate_pki() {
  local pki="$STATE_DIR/pki"
  mkdir -p "$pki"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -days 30 -subj "/CN=apiservice-operator-local-ca" 2>/dev/null
  issue_cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  # The RBAC bootstrap policy binds these user names and groups to their built-in roles.
  issue_cert admin "/O=system:masters/CN=kubernetes-admin"
  issue_cert controller-manager "/CN=system:kube-controller-manager"
  issue_cert scheduler "/CN=system:kube-scheduler"
  issue_cert kwok "/O=system:masters/CN=kwok-controller"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# Write a kubeconfig for one client certificate. $3 is the context name.
write_kubeconfig() {
  local path="$1" cert="$2" context="$3"
  local pki="$STATE_DIR/pki"
  cat >"$path" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $context
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $context-$cert
  user:
    client-certificate: $pki/$cert.crt
    client-key: $pki/$cert.key
contexts:
- name: $context
  context:
    cluster: $context
    user: $context-$cert
current-context: $context
EOF
}

start_etcd() {
  launch etcd "$ETCD_BIN/etcd" \
    --name local \
    --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "http://127.0.0.1:$ETCD_METRICS_PORT" \
    --unsafe-no-fsync \
    --quota-backend-bytes 2147483648
  wait_healthy etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local pki="$STATE_DIR/pki"
  # The service range below is only a setting the API server requires: nothing is routed there.
  launch kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "$APISERVER_PORT" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file "$pki/apiserver.crt" \
    --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --allow-privileged \
    --profiling=false
  wait_healthy kube-apiserver kubectl get --raw /readyz
}

start_controller_manager() {
  local pki="$STATE_DIR/pki" config="$STATE_DIR/controller-manager.kubeconfig"
  write_kubeconfig "$config" controller-manager local
  # The host-path provisioner gives PersistentVolumeClaims a volume, as a real cluster's
  # storage class would, so pods that mount one can be scheduled.
  launch kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$config" \
    --authentication-kubeconfig "$config" \
    --authorization-kubeconfig "$config" \
    --bind-address 127.0.0.1 \
    --secure-port "$CONTROLLER_MANAGER_PORT" \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials \
    --enable-hostpath-provisioner \
    --leader-elect=false \
    --profiling=false
  wait_healthy kube-controller-manager curl -fsSk "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
}

start_scheduler() {
  local config="$STATE_DIR/scheduler.kubeconfig"
  write_kubeconfig "$config" scheduler local
  launch kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$config" \
    --authentication-kubeconfig "$config" \
    --authorization-kubeconfig "$config" \
    --bind-address 127.0.0.1 \
    --secure-port "$SCHEDULER_PORT" \
    --leader-elect=false \
    --profiling=false
  wait_healthy kube-scheduler curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

start_kwok() {
  local config="$STATE_DIR/kwok.kubeconfig"
  write_kubeconfig "$config" kwok local
  # kwok manages only nodes that carry its annotation, so a real node added later is left alone.
  # The pod addresses it hands out are never contacted: no process listens behind them.
  launch kwok "$KWOK_BIN/kwok" \
    --kubeconfig "$config" \
    --config "$HACK_DIR/kwok-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 \
    --node-ip 127.0.0.1 \
    --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$KWOK_PORT"
  wait_healthy kwok curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"
}

apply_cluster_objects() {
  kubectl apply --server-side --field-manager cluster-up -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
  local deadline=$((SECONDS + START_TIMEOUT))
  until kubectl get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; do
    ((SECONDS < deadline)) || fail_start kwok "node $NODE_NAME not Ready after ${START_TIMEOUT}s"
    sleep 0.5
  done
  log "node $NODE_NAME is Ready"
}

cmd_up() {
  if is_running kube-apiserver; then
    log "the cluster already runs; kubeconfig: $KUBECONFIG_PATH"
    printf '%s\n' "$KUBECONFIG_PATH"
    return
  fi
  "$HACK_DIR/build-binaries.sh"
  local start=$SECONDS
  stop_all
  rm -rf "$STATE_DIR"
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
  ETCD_PORT="$(free_port)"; ETCD_PEER_PORT="$(free_port)"; ETCD_METRICS_PORT="$(free_port)"
  APISERVER_PORT="$(free_port)"; CONTROLLER_MANAGER_PORT="$(free_port)"
  SCHEDULER_PORT="$(free_port)"; KWOK_PORT="$(free_port)"
  generate_pki
  write_kubeconfig "$KUBECONFIG_PATH" admin apiservice-local
  declare -p ETCD_PORT ETCD_PEER_PORT ETCD_METRICS_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT \
    SCHEDULER_PORT KWOK_PORT >"$STATE_DIR/ports.env"

  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
  apply_cluster_objects
  log "cluster up in $((SECONDS - start))s, Kubernetes $KUBE_VERSION"
  log "use it with: export KUBECONFIG=$KUBECONFIG_PATH"
  printf '%s\n' "$KUBECONFIG_PATH"
}

# Stop the clients and the components in two waves: everything that talks to etcd at once, then
# etcd, so that no component is left waiting on it. Each wave waits up to ten seconds before
# SIGKILL.
stop_all() {
  local components=("${COMPONENTS[@]:1}")
  stop_wave "${CLIENTS[@]}" "${components[@]}"
  stop_wave etcd
}

stop_wave() {
  local component pid entry stopping=()
  for component in "$@"; do
    pid="$(pid_of "$component")"
    [[ -n "$pid" ]] || continue
    kill "$pid" 2>/dev/null && stopping+=("$component:$pid")
    rm -f "$STATE_DIR/pids/$component"
  done
  local deadline=$((SECONDS + 10))
  for entry in "${stopping[@]}"; do
    pid="${entry#*:}"
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped ${entry%%:*}"
  done
}

cmd_down() {
  stop_all
  rm -rf "$STATE_DIR"
  log "cluster removed"
}

cmd_status() {
  local healthy=0 component
  for component in "${COMPONENTS[@]}"; do
    if is_running "$component"; then
      log "$component runs (pid $(pid_of "$component"))"
    else
      log "$component is not running"
      healthy=1
    fi
  done
  if [[ -f "$KUBECONFIG_PATH" ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
    log "API server is ready; kubeconfig: $KUBECONFIG_PATH"
    kubectl get nodes >&2
  else
    log "API server is not ready"
    healthy=1
  fi
  return "$healthy"
}

cmd_restart() {
  local component="${1:-}"
  if [[ ! -f "$STATE_DIR/ports.env" ]]; then
    log "no cluster to restart a component of: run $0 up first"
    exit 1
  fi
  # shellcheck source=/dev/null
  source "$STATE_DIR/ports.env"
  local start=$SECONDS
  case "$component" in
    etcd) stop_wave etcd; start_etcd ;;
    kube-apiserver) stop_wave kube-apiserver; start_apiserver ;;
    kube-controller-manager) stop_wave kube-controller-manager; start_controller_manager ;;
    kube-scheduler) stop_wave kube-scheduler; start_scheduler ;;
    kwok) stop_wave kwok; start_kwok ;;
    *)
      echo "usage: $0 restart ${COMPONENTS[*]}" >&2
      exit 2
      ;;
  esac
  log "restarted $component in $((SECONDS - start))s"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) cmd_restart "${2:-}" ;;
  *)
    echo "usage: $0 up|down|status|restart COMPONENT" >&2
    exit 2
    ;;
esac
