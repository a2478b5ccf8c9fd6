#!/usr/bin/env bash
# hack/cluster/up.sh — start the local control plane on 127.0.0.1 (make cluster).
#
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK, built by
# build.sh, with certificates and service-account keys generated here, state and
# PID files under $REPO/.cluster/ (git-ignored). Writes .cluster/kubeconfig (admin)
# and .cluster/bin/kubectl. Idempotent: a running cluster is found and reused.
# A stale state (PID files whose processes are gone) is reported and cleared; a
# half-running one or a port taken by another program stops with a message that
# says what to do (`make cluster-down` recovers from all of them). Its twin is
# down.sh; nodes.yaml lists the KWOK nodes. At the end it starts the real kubelet node
# (hack/node/up.sh: containerd, kubelet, kube-proxy) unless SIMJOB_REAL_NODE=0.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
run="$state/run" logs="$state/logs" pki="$state/pki" bin="$state/bin"

ETCD_PORT="${SIMJOB_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${SIMJOB_ETCD_PEER_PORT:-23800}"
API_PORT="${SIMJOB_APISERVER_PORT:-16443}"
KCM_PORT="${SIMJOB_KCM_PORT:-10357}"
SCHED_PORT="${SIMJOB_SCHEDULER_PORT:-10359}"
KWOK_PORT="${SIMJOB_KWOK_PORT:-10347}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
REAL_NODE="${SIMJOB_REAL_NODE:-1}"   # 0: KWOK nodes only (machines that cannot run containers)
# The API server listens on all addresses so that pods on the real node reach it through
# the `kubernetes` Service (kube-proxy DNATs 10.96.0.1:443 to the advertised address, which
# cannot be loopback); clients still use https://127.0.0.1:$API_PORT.
HOST_IP="${SIMJOB_HOST_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | sed -nE 's/.* src ([0-9.]+).*/\1/p' | head -n1)}"

log() { printf '[cluster] %s\n' "$*" >&2; }
# One up.sh or down.sh at a time per state folder (a down racing an up removes the state
# from under the new processes). The lock lives outside the state folder, which down removes.
lock_dir="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}/locks"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/cluster-$(printf '%s' "$state" | sha256sum | cut -c1-12).lock"
if ! flock -n 9; then
  log "another hack/cluster/up.sh or down.sh runs on $state; waiting for it (up to 15 min)…"
  flock -w 900 9 || { log "ERROR: still locked after 15 min"; exit 1; }
fi
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# --- process bookkeeping -----------------------------------------------------
pid_of() { [ -f "$run/$1.pid" ] && cat "$run/$1.pid" || true; }
is_ours() {  # is_ours NAME: the PID file names a live process running that component
  local pid; pid="$(pid_of "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"
}
port_user() { ss -Hltnp "sport = :$1" 2>/dev/null | sed -E 's/.*users:\(\("([^"]+)",pid=([0-9]+).*/\1 (pid \2)/' | head -n1; }

start() {  # start NAME CMD...: run in its own session, log and PID under .cluster/
  local name="$1"; shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$run/$name.pid"
}

wait_for() {  # wait_for WHAT SECONDS NAME CMD...: poll CMD until it succeeds
  local what="$1" secs="$2" name="$3"; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! is_ours "$name"; then
      tail -n 30 "$logs/$name.log" >&2 || true
      die "$name exited while waiting for $what; log: $logs/$name.log (then: make cluster-down)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$logs/$name.log" >&2 || true
      die "timed out after ${secs}s waiting for $what; log: $logs/$name.log (then: make cluster-down)"
    fi
    sleep 0.3
  done
}

# --- already running? ----------------------------------------------------------
alive=() dead=()
for c in "${COMPONENTS[@]}"; do
  if is_ours "$c"; then alive+=("$c"); elif [ -f "$run/$c.pid" ]; then dead+=("$c"); fi
done
if [ "${#alive[@]}" -eq "${#COMPONENTS[@]}" ]; then
  if "$bin/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    log "already running (API server https://127.0.0.1:$API_PORT); kubeconfig: $state/kubeconfig"
    if [ "$REAL_NODE" != 0 ]; then "$repo/hack/node/up.sh"; fi
    exit 0
  fi
  die "all components run but /readyz fails; see $logs/ — recover with: make cluster-down && make cluster"
fi
if [ "${#alive[@]}" -gt 0 ]; then
  die "half-started cluster: running: ${alive[*]}; not running: ${dead[*]:-${COMPONENTS[*]}}. Recover with: make cluster-down && make cluster"
fi
if [ "${#dead[@]}" -gt 0 ]; then
  log "stale PID files from an earlier run (${dead[*]} not running); clearing old state"
fi
rm -rf "$state/etcd" "$run"

for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT"; do
  user="$(port_user "$p")"
  [ -z "$user" ] || die "port 127.0.0.1:$p is already in use by $user. Stop it, or choose other ports with SIMJOB_*_PORT (see hack/cluster/up.sh)"
done

# --- binaries ------------------------------------------------------------------
cache="$("$here/build.sh" | tail -n1)"
mkdir -p "$run" "$logs" "$pki" "$bin"
for c in simkube kwok; do ln -sfn "$cache/bin/$c" "$bin/$c"; done
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do ln -sfn simkube "$bin/$c"; done
cp "$cache/stages.yaml" "$state/kwok-stages.yaml"
# KWOK's kubelet-like server serves every pod's log from one file in CRI format
# ($state/kwok-pod.log, empty until someone writes to it). The API server reaches that
# server only on nodes whose addresses and kubeletEndpoint point at it (none of
# nodes.yaml do; bench/progress.py creates such a node): elsewhere a log read fails.
: >"$state/kwok-pod.log"
cat >>"$state/kwok-stages.yaml" <<LOGS
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: pod-logs
spec:
  logs:
  - logsFile: $state/kwok-pod.log
LOGS

# --- certificates and keys ------------------------------------------------------
leaf() {  # leaf NAME SUBJECT [SANS]: an EC key + certificate signed by our CA
  local name="$1" subj="$2" sans="${3:-}" ext="$pki/$1.ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
}
if [ ! -s "$pki/admin.crt" ]; then
  log "generating certificates and service-account keys"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=simjob-local-ca" -days 365 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.crt" 2>/dev/null
  leaf apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1${HOST_IP:+,IP:$HOST_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  leaf admin "/O=system:masters/CN=simjob-admin"
  leaf controller-manager "/CN=system:kube-controller-manager"
  leaf scheduler "/CN=system:kube-scheduler"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi
# The API server's client certificate towards the kubelet (logs, exec, port-forward).
[ -s "$pki/apiserver-kubelet-client.crt" ] \
  || leaf apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"

kubeconfig() {  # kubeconfig USER FILE
  local b64="base64 -w0"
  cat >"$2" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: simjob-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $($b64 <"$pki/$1.crt")
    client-key-data: $($b64 <"$pki/$1.key")
contexts:
- name: simjob-local
  context: {cluster: simjob-local, user: $1}
current-context: simjob-local
KUBECONFIG
  chmod 600 "$2"
}
kubeconfig admin "$state/kubeconfig"
kubeconfig controller-manager "$state/controller-manager.kubeconfig"
kubeconfig scheduler "$state/scheduler.kubeconfig"
kctl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# --- etcd and the API server ------------------------------------------------------
log "starting etcd on 127.0.0.1:$ETCD_PORT"
SIMKUBE_ETCD_UNSAFE_NO_FSYNC=1 start etcd "$bin/simkube" etcd --data-dir "$state/etcd" \
  --listen-client-url "http://127.0.0.1:$ETCD_PORT" --listen-peer-url "http://127.0.0.1:$ETCD_PEER_PORT"
wait_for "etcd health" 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

if [ "$REAL_NODE" != 0 ] && [ -n "$HOST_IP" ]; then
  apiserver_address_flags=(--bind-address=0.0.0.0 --advertise-address="$HOST_IP")
else  # no real node (or no non-loopback address): loopback only, no kubernetes endpoints
  apiserver_address_flags=(--bind-address=127.0.0.1 --advertise-address=127.0.0.1
                           --endpoint-reconciler-type=none)
fi
log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
start kube-apiserver "$bin/simkube" kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  "${apiserver_address_flags[@]}" --secure-port="$API_PORT" \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=Node,RBAC --allow-privileged=true \
  --max-requests-inflight=1000 --max-mutating-requests-inflight=500 \
  --profiling=false --event-ttl=1h
wait_for "the API server's /readyz" 120 kube-apiserver kctl get --raw /readyz

# --- controllers, scheduler, KWOK ---------------------------------------------------
log "starting kube-controller-manager, kube-scheduler and KWOK"
start kube-controller-manager "$bin/simkube" kube-controller-manager \
  --kubeconfig="$state/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --use-service-account-credentials=true --kube-api-qps=200 --kube-api-burst=400 \
  --concurrent-job-syncs=20 --concurrent-gc-syncs=40
cat >"$state/scheduler.yaml" <<SCHED
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $state/scheduler.kubeconfig
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
SCHED
start kube-scheduler "$bin/simkube" kube-scheduler --config="$state/scheduler.yaml" \
  --authentication-kubeconfig="$state/scheduler.kubeconfig" \
  --authorization-kubeconfig="$state/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT"
start kwok "$bin/kwok" --kubeconfig="$state/kubeconfig" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --config="$state/kwok-stages.yaml" --server-address="127.0.0.1:$KWOK_PORT" \
  --node-ip=10.244.0.1 --cidr=10.244.0.0/16

kctl apply -f "$here/nodes.yaml" >/dev/null
wait_for "KWOK nodes Ready" 60 kwok kctl wait --for=condition=Ready node -l type=kwok --timeout=2s
wait_for "the default ServiceAccount" 60 kube-controller-manager kctl -n default get serviceaccount default
for c in "${COMPONENTS[@]}"; do is_ours "$c" || die "$c is not running; log: $logs/$c.log"; done
log "ready: API server https://127.0.0.1:$API_PORT, $(kctl get nodes -l type=kwok --no-headers | wc -l) KWOK nodes"
if [ "$REAL_NODE" != 0 ]; then
  "$repo/hack/node/up.sh"
else
  log "real node disabled (SIMJOB_REAL_NODE=0): KWOK nodes only"
fi
log "use: export KUBECONFIG=$state/kubeconfig PATH=$bin:\$PATH"
