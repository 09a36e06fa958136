#!/usr/bin/env bash
# Hand smoke test of the control plane built by build.sh: PKI with openssl,
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback,
# /readyz, the TrainingJob CRD, and a few objects. Kills everything it started.
#
#   sandbox/controlplane/smoke.sh                # uses the cache from build.sh
#   KEEP=1 sandbox/controlplane/smoke.sh         # keep the work dir (logs, certs)
#
# This is a record of working flags for the Python launcher, not the launcher.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))"
bin="${BIN:-$("$here/build.sh" | sed -n 's/^bin: //p')}"
kubectl="${KUBECTL:-$repo/.venv/bin/kubectl}"
crd="$repo/crds/trainingjobs.elastrain.dev.yaml"

work="$(mktemp -d /tmp/elastrain-cp.XXXXXX)"
pki="$work/pki"
mkdir -p "$pki"
pids=()
# Running and not a zombie (kill -0 succeeds on an unreaped child).
alive() { [[ -r /proc/$1/stat ]] && [[ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]]; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local t_stop; t_stop=$(now)
    # Stop in reverse start order: etcd last. If etcd dies first, kube-apiserver
    # hangs in its graceful shutdown retrying etcd; so also escalate to KILL.
    local i pid n
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill "$pid" 2>/dev/null || continue
        for ((n = 0; n < 100; n++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then kill -9 "$pid"; echo "killed -9 $pid (did not stop within 10s)"; fi
        wait "$pid" 2>/dev/null || true
    done
    echo "stopped all in $(since "$t_stop")"
    if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}s')"; }

# ---------------------------------------------------------------- PKI
t0=$(now)
cd "$pki"
ca() { # name CN
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$1.key" -out "$1.crt" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}
leaf() { # name ca subject eku [san]
    local name=$1 ca=$2 subj=$3 eku=$4 san=${5:-}
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [[ -n "$san" ]] && echo "subjectAltName=$san"
    } > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}
ca ca elastrain-test-ca
ca front-proxy-ca elastrain-test-front-proxy-ca
leaf apiserver ca "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
leaf admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
leaf controller-manager ca "/CN=system:kube-controller-manager" clientAuth
leaf scheduler ca "/CN=system:kube-scheduler" clientAuth
leaf apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
leaf front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
echo "pki: $(since "$t0")"

etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
kcm_port=$(free_port); sched_port=$(free_port)
server="https://127.0.0.1:$api_port"

kubeconfig() { # file user
    cat > "$work/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: elastrain
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: elastrain
  context: {cluster: elastrain, user: $2}
current-context: elastrain
EOF
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
k() { "$kubectl" --kubeconfig "$work/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- etcd
t0=$(now)
"$bin/etcd" \
    --name=elastrain \
    --data-dir="$work/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_client" \
    --advertise-client-urls="http://127.0.0.1:$etcd_client" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="elastrain=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync \
    --log-level=warn \
    > "$work/etcd.log" 2>&1 &
pids+=($!)
until curl -fsS "http://127.0.0.1:$etcd_client/health" 2>/dev/null | grep -q '"health":"true"'; do
    kill -0 "${pids[-1]}" || { cat "$work/etcd.log"; exit 1; }
    sleep 0.1
done
echo "etcd healthy: $(since "$t0")"

# ---------------------------------------------------------------- kube-apiserver
t0=$(now)
"$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_client" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --profiling=false \
    > "$work/kube-apiserver.log" 2>&1 &
pids+=($!)
until curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "$server/readyz" >/dev/null 2>&1; do
    kill -0 "${pids[-1]}" || { tail -50 "$work/kube-apiserver.log"; exit 1; }
    sleep 0.2
done
echo "kube-apiserver /readyz ok: $(since "$t0")"

# ---------------------------------------------------------------- controller-manager, scheduler
t0=$(now)
"$bin/kube-controller-manager" \
    --kubeconfig="$work/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$work/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$work/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --client-ca-file="$pki/ca.crt" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --root-ca-file="$pki/ca.crt" \
    --service-account-private-key-file="$pki/sa.key" \
    --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" \
    --use-service-account-credentials=true \
    --controllers='*' \
    --service-cluster-ip-range=10.96.0.0/16 \
    --leader-elect=false \
    --profiling=false \
    > "$work/kube-controller-manager.log" 2>&1 &
pids+=($!)
"$bin/kube-scheduler" \
    --kubeconfig="$work/scheduler.kubeconfig" \
    --authentication-kubeconfig="$work/scheduler.kubeconfig" \
    --authorization-kubeconfig="$work/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$sched_port" \
    --client-ca-file="$pki/ca.crt" \
    --leader-elect=false \
    --profiling=false \
    > "$work/kube-scheduler.log" 2>&1 &
pids+=($!)
for p in "$kcm_port" "$sched_port"; do
    until curl -fsSk "https://127.0.0.1:$p/healthz" >/dev/null 2>&1; do
        for pid in "${pids[@]}"; do kill -0 "$pid" || { tail -30 "$work"/kube-*.log; exit 1; }; done
        sleep 0.2
    done
done
echo "controller-manager and scheduler /healthz ok: $(since "$t0")"

if [[ "${HOLD:-0}" == 1 ]]; then
    # Keep the cluster up for poking at it; stop with kill <pid of this script>.
    echo "HOLD: export KUBECONFIG=$work/admin.kubeconfig   (kill $$ to stop)"
    sleep infinity &
    pids+=($!)
    wait "${pids[-1]}" || true
    exit 0
fi

# ---------------------------------------------------------------- checks
echo "--- readyz"
k get --raw '/readyz?verbose' | tail -3
echo "--- version"
k version
echo "--- CRD apply"
k apply -f "$crd"
k wait --for condition=Established --timeout=60s crd/trainingjobs.elastrain.dev
echo "--- CRD re-apply (update path)"
k apply -f "$crd"
echo "--- create the examples (CEL runs on create)"
for f in "$repo"/examples/*.yaml; do
    k apply -f "$f" || echo "EXAMPLE FAILED: $f"
done
k get trainingjobs
echo "--- CEL on update through the scale subresource"
k scale trainingjob/elastic-ddp --replicas=3
if k scale trainingjob/elastic-ddp --replicas=5 2>"$work/scale.err"; then
    echo "UNEXPECTED: scaling above maxReplicas was accepted"
else
    echo "refused as expected: $(cat "$work/scale.err")"
fi
echo "--- controllers: namespace gets a default ServiceAccount, Deployment gets a Pod"
k create namespace smoke
until k -n smoke get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
k -n smoke create deployment web --image=registry.invalid/none:1 --replicas=1
until [[ -n "$(k -n smoke get pods -o name 2>/dev/null)" ]]; do sleep 0.2; done
k -n smoke get deploy,rs,pods
echo "--- scheduler: Pod stays Pending with FailedScheduling (no nodes)"
until k -n smoke get events --field-selector reason=FailedScheduling -o name 2>/dev/null | grep -q .; do sleep 0.5; done
k -n smoke get events --field-selector reason=FailedScheduling -o custom-columns=REASON:.reason,MESSAGE:.message
echo "--- token from the SA issuer"
k -n smoke create token default --duration=10m | cut -c1-40
echo "SMOKE OK"
