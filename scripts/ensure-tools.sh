#!/usr/bin/env bash
# Installs the Debian tools the end-to-end suite and the demo use, only where they are missing.
# kubectl normally comes with the machine image; prometheus is used by the dashboard checks.
set -euo pipefail
missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "ensure-tools: installing ${missing[*]}" >&2
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
