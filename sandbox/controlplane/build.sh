#!/usr/bin/env bash
# Build the real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd) and the metrics-server add-on from their Go modules into a cache
# outside the repo.
#
#   sandbox/controlplane/build.sh            # build if needed, print the bin dir
#   ELASTRAIN_CACHE=/some/dir build.sh       # cache root (default ~/.cache/elastrain)
#   ELASTRAIN_BUILD_JOBS=4 build.sh          # go build -p (default 2)
#   ELASTRAIN_CP_FORCE=1 build.sh            # ignore the stamp and rebuild
#
# Exit codes: 0 built or up to date; 3 `go` not found (callers fall back);
# anything else: the build failed (the go error is printed above).
# The last line printed on success is "bin: <dir>".
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found on PATH; cannot build the control plane (needs Go >= 1.26)" >&2
    exit 3
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Versions come from the go.mod files, the single source of truth.
# Matches both `require m v1` and a line inside a `require (...)` block.
modversion() { sed -nE "s#^(require)?[[:space:]]*$1 (v[^ ]+).*#\2#p" "$2" | head -n1; }
k8s_version="$(modversion k8s.io/kubernetes "$here/go.mod")"
etcd_version="$(modversion go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")"
ms_version="$(modversion sigs.k8s.io/metrics-server "$here/metrics-server/go.mod")"
if [[ -z "$k8s_version" || -z "$etcd_version" || -z "$ms_version" ]]; then
    echo "build.sh: cannot read the kubernetes/etcd/metrics-server versions from go.mod" >&2
    exit 1
fi

cache_root="${ELASTRAIN_CACHE:-$HOME/.cache/elastrain}/control-plane/$k8s_version"
bin="$cache_root/bin"
stamp="$cache_root/STAMP"
binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd metrics-server)

# Keep Go's module and build caches out of the repo (they are GBs).
repo_root="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || echo "$here")"
for var in GOMODCACHE GOCACHE; do
    dir="$(go env "$var")"
    case "$dir/" in
        "$repo_root"/*)
            echo "build.sh: $var=$dir is inside the repo ($repo_root); point it elsewhere" >&2
            exit 1 ;;
    esac
done

jobs="${ELASTRAIN_BUILD_JOBS:-2}"
export CGO_ENABLED=0   # static binaries, as upstream releases them
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version"
    k8s_ldflags+=" -X $pkg.gitMajor=$(echo "$k8s_version" | sed -E 's/^v([0-9]+)\..*/\1/')"
    k8s_ldflags+=" -X $pkg.gitMinor=$(echo "$k8s_version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done
etcd_ldflags="-s -w"
ms_ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=$ms_version"
build_flags=(-trimpath -buildvcs=false -p "$jobs")

# The stamp: inputs of the build, the go version and the flags. Bump
# stamp_schema when the way the binaries are built changes.
stamp_schema=1
stamp_value="$(
    {
        echo "schema=$stamp_schema"
        go version
        echo "GOOS=$(go env GOOS) GOARCH=$(go env GOARCH) CGO_ENABLED=$CGO_ENABLED"
        echo "k8s_ldflags=$k8s_ldflags"
        echo "etcd_ldflags=$etcd_ldflags"
        echo "ms_ldflags=$ms_ldflags"
        echo "flags=-trimpath -buildvcs=false"
        cd "$here"
        sha256sum go.mod go.sum cmd/*/main.go etcd/go.mod etcd/go.sum etcd/cmd/*/main.go \
            metrics-server/go.mod metrics-server/go.sum
    } | sha256sum | cut -d' ' -f1
)"

up_to_date() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" ]] || return 1
    local b
    for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

mkdir -p "$cache_root"
# Serialise concurrent callers (e.g. parallel test workers) on one cache.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_root/.lock"
    flock 9
fi

if [[ "${ELASTRAIN_CP_FORCE:-0}" != 1 ]] && up_to_date; then
    echo "control plane up to date: kubernetes $k8s_version, etcd $etcd_version, metrics-server $ms_version"
    echo "bin: $bin"
    exit 0
fi

echo "building control plane: kubernetes $k8s_version, etcd $etcd_version, metrics-server $ms_version ($(go version | cut -d' ' -f3), -p $jobs)"
echo "GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

t=$SECONDS
(cd "$here" && go build "${build_flags[@]}" -ldflags="$k8s_ldflags" -o "$tmp/" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler)
echo "built kube-apiserver, kube-controller-manager, kube-scheduler in $((SECONDS - t))s"

t=$SECONDS
(cd "$here/etcd" && go build "${build_flags[@]}" -ldflags="$etcd_ldflags" -o "$tmp/" ./cmd/etcd)
echo "built etcd in $((SECONDS - t))s"

t=$SECONDS
(cd "$here/metrics-server" && go build "${build_flags[@]}" -ldflags="$ms_ldflags" -o "$tmp/" \
    sigs.k8s.io/metrics-server/cmd/metrics-server)
echo "built metrics-server in $((SECONDS - t))s"

mkdir -p "$bin"
for b in "${binaries[@]}"; do
    mv -f "$tmp/$b" "$bin/$b"
done
{
    echo "kubernetes $k8s_version"
    echo "etcd $etcd_version"
    echo "metrics-server $ms_version"
    go version
} > "$cache_root/VERSIONS"
echo "$stamp_value" > "$stamp"

echo "control plane built in $((SECONDS - start))s:"
for b in "${binaries[@]}"; do
    printf '  %-24s %s\n' "$b" "$(du -h "$bin/$b" | cut -f1)"
done
echo "bin: $bin"
