#!/usr/bin/env bash
# Test-only tools from PyPI, in a venv of their own next to the torch one (reused when
# present): schemathesis, which checks the running server against its /openapi.json, and
# kubernetes-validate, which checks deploy/kubernetes/ against the Kubernetes API schemas.
# Prints the schemathesis executable's path (last line); kubernetes-validate is next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SCHEMATHESIS_VERSION=4.32.5
KUBERNETES_VALIDATE_VERSION=1.37.0
TOOLS_VENV="${VOC_TOOLS_VENV:-$(dirname "$VOC_VENV")/tools-venv}"
if ! "$TOOLS_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "tools: installing schemathesis $SCHEMATHESIS_VERSION into $TOOLS_VENV (once)" >&2
  mkdir -p "$(dirname "$TOOLS_VENV")"
  python3 -m venv "$TOOLS_VENV" >&2
  "$TOOLS_VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
if ! "$TOOLS_VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  echo "tools: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TOOLS_VENV (once)" >&2
  "$TOOLS_VENV/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi
echo "$TOOLS_VENV/bin/schemathesis"
