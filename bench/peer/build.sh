#!/usr/bin/env bash
# Build the peer of the benchmarks: Kubeflow's training-operator v1 (PyTorchJob), the manager
# `cmd/training-operator.v1`, from its own Go module into a cache outside the repo, and copy
# its PyTorchJob CRD next to it. bench/peer.py runs it against the real control plane.
#
#   bench/peer/build.sh                      # build if needed, print the bin dir
#   ELASTRAIN_CACHE=/some/dir build.sh       # cache root (default ~/.cache/elastrain)
#   ELASTRAIN_PEER_VERSION=v1.8.1 build.sh   # another release of the v1 line (default below)
#   ELASTRAIN_BUILD_JOBS=2 build.sh          # go build -p (default 1: the machine is shared)
#   ELASTRAIN_PEER_FORCE=1 build.sh          # ignore the stamp and rebuild
#
# It is built with `go install <pkg>@<version>`: in module mode with the module's own go.mod
# and go.sum (k8s.io v0.31, controller-runtime v0.19), exactly as its authors pinned them.
# It is not our control plane and shares nothing with sandbox/controlplane's go.mod. The
# module has no replace directives, which is what makes `go install ...@version` work.
#
# Exit codes: 0 built or up to date; 3 `go` not found; anything else: the download or the
# build failed (the go error is printed above). On success the last lines are
# "version: <v>", "crds: <dir>" and "bin: <dir>".
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found on PATH; cannot build the peer" >&2
    exit 3
fi

module=github.com/kubeflow/training-operator
version="${ELASTRAIN_PEER_VERSION:-v1.9.2}"
pkg="$module/cmd/training-operator.v1"
binary=training-operator.v1
crd=kubeflow.org_pytorchjobs.yaml

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${ELASTRAIN_CACHE:-$HOME/.cache/elastrain}/peer/training-operator/$version"
bin="$cache_root/bin"
crds="$cache_root/crds"
stamp="$cache_root/STAMP"

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

jobs="${ELASTRAIN_BUILD_JOBS:-1}"
export CGO_ENABLED=0   # a static binary, as upstream's image has
export GOWORK=off      # `go install pkg@version` must see the module alone
export GOFLAGS=-buildvcs=false   # drop any -mod=... a caller set: pkg@version refuses it
ldflags="-s -w"
build_flags=(-trimpath -p "$jobs")

stamp_schema=1
stamp_value="$(
    {
        echo "schema=$stamp_schema"
        echo "$pkg@$version"
        go version
        echo "GOOS=$(go env GOOS) GOARCH=$(go env GOARCH) CGO_ENABLED=$CGO_ENABLED"
        echo "ldflags=$ldflags flags=-trimpath"
    } | sha256sum | cut -d' ' -f1
)"

up_to_date() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" ]] || return 1
    [[ -x "$bin/$binary" && -f "$crds/$crd" ]]
}

mkdir -p "$cache_root"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_root/.lock"
    flock 9
fi

if [[ "${ELASTRAIN_PEER_FORCE:-0}" != 1 ]] && up_to_date; then
    echo "peer up to date: $module $version"
    echo "version: $version"
    echo "crds: $crds"
    echo "bin: $bin"
    exit 0
fi

echo "building peer: $pkg@$version ($(go version | cut -d' ' -f3), -p $jobs)"
echo "GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

# The module's own tree (for the CRD) and a clear error if the proxy does not serve it.
t=$SECONDS
# -json puts the proxy's refusal in "Error" on stdout (exit 1): print it as the error.
if ! download="$(cd "$tmp" && go mod download -json "$module@$version")"; then
    echo "build.sh: go mod download $module@$version failed:" >&2
    printf '%s\n' "$download" | sed -nE 's/^[[:space:]]*"Error": "(.*)",?$/\1/p' \
        | sed 's/\\n\\t/\n  /g' >&2
    exit 1
fi
dir="$(printf '%s\n' "$download" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
if [[ -z "$dir" || ! -f "$dir/manifests/base/crds/$crd" ]]; then
    echo "build.sh: $module@$version: no $crd under manifests/base/crds in the module" >&2
    exit 1
fi
echo "downloaded $module@$version in $((SECONDS - t))s: $dir"

t=$SECONDS
(cd "$tmp" && GOBIN="$tmp/bin" nice go install "${build_flags[@]}" -ldflags="$ldflags" \
    "$pkg@$version")
echo "built $binary in $((SECONDS - t))s"

mkdir -p "$bin" "$crds"
mv -f "$tmp/bin/$binary" "$bin/$binary"
# Only the PyTorchJob CRD: the bench enables that scheme alone.
install -m 0644 "$dir/manifests/base/crds/$crd" "$crds/$crd"
{
    echo "$module $version"
    go version
} > "$cache_root/VERSIONS"
echo "$stamp_value" > "$stamp"

echo "peer built in $((SECONDS - start))s: $binary $(du -h "$bin/$binary" | cut -f1)"
echo "version: $version"
echo "crds: $crds"
echo "bin: $bin"
