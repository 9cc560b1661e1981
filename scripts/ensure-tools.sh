#!/usr/bin/env bash
# Installs the Debian tools the end-to-end suite and the demo use, only where they are missing.
# kubectl normally comes with the machine image (/usr/bin/kubectl). Where it is missing, the
# Debian package `kubectl` is tried first (present when a Kubernetes apt source is configured),
# then Debian's own `kubernetes-client`, which also provides /usr/bin/kubectl.
# The stand-in API server itself needs nothing beyond the Python test extras (kmock).
set -euo pipefail

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

# openssl makes the certificate of the operator's HTTPS webhook in the e2e scenarios
# (e2e/harness/scenario.py); without it those scenarios fail in CI and are skipped elsewhere.
if ! command -v openssl >/dev/null 2>&1; then
  echo "ensure-tools: openssl is missing; installing it with apt-get" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null ||
    echo "ensure-tools: could not install openssl (the webhook scenarios cannot run)" >&2
fi

# prometheus (Debian package, /usr/bin/prometheus) scrapes the running operator and extender in
# the live dashboard check (e2e/test_dashboards_live.py); about 15 s to install on a fresh
# machine. The package's service is not started (no init system in CI); the test runs its own.
if ! command -v prometheus >/dev/null 2>&1; then
  echo "ensure-tools: prometheus is missing; installing it with apt-get" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null ||
    echo "ensure-tools: could not install prometheus (the live dashboard check cannot run)" >&2
fi

if command -v kubectl >/dev/null 2>&1; then
  exit 0
fi

echo "ensure-tools: kubectl is missing; installing it with apt-get" >&2
$SUDO apt-get update -qq
for package in kubectl kubernetes-client; do
  if apt-cache show "$package" >/dev/null 2>&1 &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null; then
    if command -v kubectl >/dev/null 2>&1; then
      echo "ensure-tools: kubectl from package $package: $(kubectl version --client 2>/dev/null | head -1)" >&2
      exit 0
    fi
  fi
done
echo "ensure-tools: could not install kubectl (tried packages kubectl, kubernetes-client)" >&2
exit 1
