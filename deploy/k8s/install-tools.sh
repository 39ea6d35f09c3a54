#!/usr/bin/env bash
# Installs what tests/test_k8s_manifests.py needs to validate the manifests offline, into
# .local/tools/ (git-ignored): the kustomize binary, built from its Go module, and KEDA's
# ScaledObject CRD, taken from KEDA's Go module. Idempotent: a second run checks two files.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUSTOMIZE_VERSION=v5.8.1
KEDA_VERSION=v2.18.0
TOOLS=.local/tools
KUSTOMIZE="$TOOLS/bin/kustomize"
KEDA_CRD="$TOOLS/keda/$KEDA_VERSION/keda.sh_scaledobjects.yaml"

installed_kustomize() { "$KUSTOMIZE" version 2>/dev/null || true; }
if [ -x "$KUSTOMIZE" ] && [ "$(installed_kustomize)" = "$KUSTOMIZE_VERSION" ] && [ -s "$KEDA_CRD" ]; then
    exit 0
fi

# The machine's Go lives in /usr/local/go; a shell that did not source a profile may lack it on PATH.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null; then
    echo "install-tools: Go 1.24 or newer is needed to build kustomize (Debian 12's golang-go is 1.19)" >&2
    exit 1
fi

if [ ! -x "$KUSTOMIZE" ] || [ "$(installed_kustomize)" != "$KUSTOMIZE_VERSION" ]; then
    echo "installing kustomize $KUSTOMIZE_VERSION into $TOOLS/bin"
    GOBIN="$PWD/$TOOLS/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

if [ ! -s "$KEDA_CRD" ]; then
    echo "fetching KEDA $KEDA_VERSION's ScaledObject CRD"
    module_dir=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$(dirname "$KEDA_CRD")"
    cp "$module_dir/config/crd/bases/keda.sh_scaledobjects.yaml" "$KEDA_CRD.tmp"
    # The module cache is read-only; the copy should not be.
    chmod 644 "$KEDA_CRD.tmp"
    mv "$KEDA_CRD.tmp" "$KEDA_CRD"
fi
