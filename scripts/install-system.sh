#!/usr/bin/env bash
# Installs the system parts the local stack needs: Debian's `zookeeper` package (the real server)
# and a JDK (DynamoDB Local and ZooKeeper run on Java; javac compiles the loopback launcher).
# Idempotent: does nothing when they are present.
set -euo pipefail

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system: missing ${missing[*]}; run as root: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "install-system: installing ${missing[*]}" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
