#!/usr/bin/env bash
# hack/node/up.sh — start the real kubelet node beside the KWOK nodes (make cluster).
#
# Needs the control plane of hack/cluster/up.sh running (it calls this script at its
# end unless SIMJOB_REAL_NODE=0). Starts, each in its own session with its PID in
# .cluster/run/NAME.pid and its log in .cluster/logs/NAME.log:
#   containerd  2.x from hack/node/build.sh; config version 3, root/state/socket under
#               .cluster/node/containerd/, overlayfs, NRI off, restrict_oom_score_adj
#               (root lacks CAP_SYS_RESOURCE here), sandbox image docker.io/simjob/pause:local,
#               network namespaces under its state dir, our CNI conf/bin dirs
#   kubelet     from simkube (same k8s.io/kubernetes release as the API server);
#               failCgroupV1: false (this machine's cgroups are v1), cgroupfs driver,
#               failSwapOn: false, 127.0.0.1:$SIMJOB_KUBELET_PORT, root dir and
#               certificates under .cluster/node/; node named after `hostname`, labelled
#               simjob.io/pool=real and tainted simjob.io/pool=real:NoSchedule
#   kube-proxy  iptables mode, service CIDR 10.96.0.0/16 as the API server's
# Images from hack/images/build.sh (images/latest/*.tar: pause and busybox are built
# here when missing, the others only by `make images`) are imported into containerd's
# k8s.io namespace before the kubelet starts. The sysctls the kubelet, kube-proxy and
# the bridge plugin change are recorded first (.cluster/node/sysctl.saved) so that
# down.sh restores them. Idempotent; waits until the node is Ready.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
run="$state/run" logs="$state/logs" pki="$state/pki" bin="$state/bin"
node="$state/node"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"

API_PORT="${SIMJOB_APISERVER_PORT:-16443}"
KUBELET_PORT="${SIMJOB_KUBELET_PORT:-10360}"
KUBELET_HEALTHZ_PORT="${SIMJOB_KUBELET_HEALTHZ_PORT:-10361}"
PROXY_HEALTHZ_PORT="${SIMJOB_PROXY_HEALTHZ_PORT:-10362}"
PROXY_METRICS_PORT="${SIMJOB_PROXY_METRICS_PORT:-10363}"
POD_CIDR="${SIMJOB_POD_CIDR:-10.88.0.0/24}"
SERVICE_CIDR="10.96.0.0/16"   # = the API server's --service-cluster-ip-range (hack/cluster/up.sh)
BRIDGE="simjob0"
NODE_NAME="$(hostname | tr '[:upper:]' '[:lower:]')"
COMPONENTS=(containerd kubelet kube-proxy)
# What the kubelet, kube-proxy and the CNI bridge (isGateway) may change; down.sh restores.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward
         net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
         net.netfilter.nf_conntrack_max)

log() { printf '[node] %s\n' "$*" >&2; }
die() { printf '[node] ERROR: %s\n' "$*" >&2; exit 1; }

pid_of() { [ -f "$run/$1.pid" ] && cat "$run/$1.pid" || true; }
is_ours() {  # is_ours NAME: the PID file names a live process running that component
  local pid; pid="$(pid_of "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"
}
port_user() { ss -Hltnp "sport = :$1" 2>/dev/null | sed -E 's/.*users:\(\("([^"]+)",pid=([0-9]+).*/\1 (pid \2)/' | head -n1; }

start() {  # start NAME CMD...: own session; the PID file gets the daemon's own PID
  local name="$1"; shift
  # setsid forks when its caller leads a process group; the inner shell writes its own
  # PID (kept by exec) so the PID file never names setsid.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$run/$name.pid" "$@" >"$logs/$name.log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 1 50); do [ -s "$run/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start (no PID file); log: $logs/$name.log"
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
    sleep 0.5
  done
}

kctl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }
[ -x "$bin/kubectl" ] && kctl get --raw /readyz >/dev/null 2>&1 \
  || die "the control plane is not running: start it with make cluster (hack/cluster/up.sh)"

# --- already running? ----------------------------------------------------------------
alive=() dead=()
for c in "${COMPONENTS[@]}"; do
  if is_ours "$c"; then alive+=("$c"); elif [ -f "$run/$c.pid" ]; then dead+=("$c"); fi
done
if [ "${#alive[@]}" -eq "${#COMPONENTS[@]}" ]; then
  log "already running (node $NODE_NAME)"
  exit 0
fi
if [ "${#alive[@]}" -gt 0 ]; then
  die "half-started real node: running: ${alive[*]}; not running: ${dead[*]:-?}. Recover with: make cluster-down && make cluster"
fi
if [ "${#dead[@]}" -gt 0 ]; then
  log "stale node state from an earlier run (${dead[*]} not running): cleaning it up first"
  "$here/down.sh"
fi
# One real node per machine (its bridge, /kubepods cgroups and kube-proxy's iptables
# chains are machine-wide). If another cluster's runs (another SIMJOB_CLUSTER_DIR), this
# cluster goes on with KWOK nodes only and says so in $state/real-node-skipped (the
# realnode tests skip with that reason).
rm -f "$state/real-node-skipped"
other="$(for p in /proc/[0-9]*; do
  c="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
  case "$c" in *"/bin/kubelet --config="*"/node/kubelet.yaml"*) case "$c" in *"$state/"*) ;; *) echo "${p#/proc/} $c";; esac;; esac
done | head -n1)"
if [ -n "$other" ]; then
  msg="another cluster's real node runs on this machine (kubelet pid ${other%% *}: $(cut -d' ' -f2-3 <<<"$other")); one real node per machine, so this cluster has KWOK nodes only"
  log "WARNING: $msg"
  echo "$msg" >"$state/real-node-skipped"
  exit 0
fi
for p in "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$PROXY_HEALTHZ_PORT" "$PROXY_METRICS_PORT"; do
  user="$(port_user "$p")"
  [ -z "$user" ] || die "port 127.0.0.1:$p is already in use by $user (another cluster's real node? One real node per machine: its interface, cgroups and iptables chains are machine-wide). Stop it, or start this cluster with SIMJOB_REAL_NODE=0"
done
ip link show "$BRIDGE" >/dev/null 2>&1 \
  && die "network interface $BRIDGE exists already: another cluster's real node runs (then start this one with SIMJOB_REAL_NODE=0), or an earlier one was not cleaned up (SIMJOB_CLUSTER_DIR=<its state dir> hack/node/down.sh)"

# --- what the node needs on this machine ---------------------------------------------------
"$here/deps.sh"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] \
  || die "no memory cgroup controller mounted: the kubelet cannot run here (set SIMJOB_REAL_NODE=0)"
nodebuild="$("$here/build.sh" | tail -n1)"
"$repo/hack/images/build.sh" pause busybox >/dev/null
mkdir -p "$run" "$logs" "$node"
for c in kubelet kube-proxy; do ln -sfn simkube "$bin/$c"; done
for c in containerd ctr containerd-shim-runc-v2; do ln -sfn "$nodebuild/bin/$c" "$bin/$c"; done
"$bin/simkube" kubelet --version >/dev/null 2>&1 \
  || die "$bin/simkube has no kubelet: rebuild it (hack/cluster/build.sh; the cache key follows the sources)"

# Record the sysctls before anything changes them (down.sh restores these values). If an
# earlier node's /kubepods cgroups are still here, its down did not finish and the host's
# values are already changed: then the baseline recorded before that node is used.
baseline="$cache_root/node/sysctl-baseline.txt"
if compgen -G '/sys/fs/cgroup/*/kubepods' >/dev/null && [ -s "$baseline" ]; then
  log "an earlier node's /kubepods cgroups are still here: restoring sysctls to $baseline at down"
  cp "$baseline" "$node/sysctl.saved"
else
  : >"$node/sysctl.saved"
  for s in "${SYSCTLS[@]}"; do
    v="$(sysctl -n "$s" 2>/dev/null)" && printf '%s=%s\n' "$s" "$v" >>"$node/sysctl.saved"
  done
  mkdir -p "$(dirname "$baseline")" && cp "$node/sysctl.saved" "$baseline"
fi
# Fixed host paths the kubelet, containerd's shims and libcni create whatever their
# configuration says; those that do not exist yet are ours to remove at down.
if [ ! -s "$node/host-paths.created" ]; then
  : >"$node/host-paths.created"
  for p in /var/lib/kubelet /var/lib/cni /var/log/containers /run/containerd; do
    [ -e "$p" ] || echo "$p" >>"$node/host-paths.created"
  done
fi

# --- certificates ----------------------------------------------------------------------
leaf() {  # leaf NAME SUBJECT [SANS]: an EC key + certificate signed by the cluster CA
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
kubeconfig() {  # kubeconfig USER FILE
  cat >"$2" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: simjob-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: simjob-local
  context: {cluster: simjob-local, user: $1}
current-context: simjob-local
KUBECONFIG
  chmod 600 "$2"
}
[ -s "$pki/kubelet.crt" ] || leaf kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
[ -s "$pki/kubelet-serving.crt" ] \
  || leaf kubelet-serving "/CN=$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1"
[ -s "$pki/kube-proxy.crt" ] || leaf kube-proxy "/CN=system:kube-proxy"
kubeconfig kubelet "$state/kubelet.kubeconfig"
kubeconfig kube-proxy "$state/kube-proxy.kubeconfig"

# --- containerd ------------------------------------------------------------------------
cd_root="$node/containerd/root" cd_state="$node/containerd/state" sock="$node/containerd.sock"
cni_conf="$node/cni/net.d" cni_bin="$nodebuild/cni"
mkdir -p "$cd_root" "$cd_state" "$cni_conf" "$node/cni/ipam" "$node/opt"
cat >"$node/containerd.toml" <<TOML
version = 3
root = "$cd_root"
state = "$cd_state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$node/opt"
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "docker.io/simjob/pause:local"
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["$cni_bin"]
      conf_dir = "$cni_conf"
      max_conf_num = 1
TOML
# One bridge network with host-local IPAM; containerd adds loopback itself. The bridge
# is the pods' gateway (so they reach the kubernetes Service through kube-proxy); no
# masquerading, so CNI adds no iptables rules.
cat >"$cni_conf/10-simjob.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "simjob",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$node/cni/ipam"
      }
    }
  ]
}
JSON
log "starting containerd (socket $sock)"
# The runc shim must be on containerd's PATH.
PATH="$nodebuild/bin:$PATH" start containerd "$bin/containerd" --config "$node/containerd.toml"
ctr() { "$bin/ctr" --address "$sock" "$@"; }
wait_for "containerd's socket" 30 containerd ctr version

shopt -s nullglob
tars=("$cache_root"/images/latest/*.tar)
shopt -u nullglob
log "importing ${#tars[@]} images from $cache_root/images/latest/ into containerd (k8s.io)"
for t in "${tars[@]}"; do
  ctr -n k8s.io images import --snapshotter overlayfs "$t" >>"$logs/image-import.log" 2>&1 \
    || { tail -n 20 "$logs/image-import.log" >&2; die "ctr images import $t failed (log: $logs/image-import.log)"; }
done

# --- kubelet -----------------------------------------------------------------------------
kroot="$node/kubelet"
mkdir -p "$kroot" "$node/pod-logs" "$node/kubelet-pki"
cat >"$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine mounts cgroup v1 hierarchies (plus a cgroup2 one beside them): kubelet
# 1.36 refuses v1 unless told not to.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $node/pod-logs
registerWithTaints:
- key: simjob.io/pool
  value: real
  effect: NoSchedule
maxPods: 30
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
# Images here are imported, never pulled: do not garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "2%"
  imagefs.available: "2%"
nodeStatusReportFrequency: 10s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
YAML
log "starting kubelet (node $NODE_NAME, 127.0.0.1:$KUBELET_PORT)"
start kubelet "$bin/kubelet" --config="$node/kubelet.yaml" \
  --kubeconfig="$state/kubelet.kubeconfig" --root-dir="$kroot" --cert-dir="$node/kubelet-pki" \
  --node-labels="simjob.io/pool=real,type=real" --v=2

# --- kube-proxy ------------------------------------------------------------------------
cat >"$node/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $state/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
oomScoreAdj: 0
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
log "starting kube-proxy (iptables, services $SERVICE_CIDR)"
start kube-proxy "$bin/kube-proxy" --config="$node/kube-proxy.yaml"

wait_for "node $NODE_NAME to register" 90 kubelet kctl get node "$NODE_NAME"
wait_for "node $NODE_NAME Ready" 120 kubelet kctl wait --for=condition=Ready node "$NODE_NAME" --timeout=2s
wait_for "kube-proxy healthz" 60 kube-proxy curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
for c in "${COMPONENTS[@]}"; do is_ours "$c" || die "$c is not running; log: $logs/$c.log"; done
log "ready: node $NODE_NAME (labels simjob.io/pool=real, taint simjob.io/pool=real:NoSchedule)"
