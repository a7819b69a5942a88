#!/usr/bin/env bash
# Installs the system parts the local stack needs: Debian's `zookeeper` package (the real server),
# a JDK (DynamoDB Local and ZooKeeper run on Java; javac compiles the loopback launcher), and the
# PostgreSQL and MariaDB servers (DolphinScheduler's metadata database, `--store postgresql|mysql`;
# the local stack starts its own throw-away instances on loopback, never the packages' services).
# Idempotent: does nothing when they are present.
set -euo pipefail

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
{ command -v mariadbd || command -v mysqld || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } \
  >/dev/null 2>&1 || missing+=(mariadb-server)

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
# The packages' own services (a PostgreSQL cluster on 5432, MariaDB on 3306) are not wanted: the local
# stack runs its own instances. A policy-rc.d that denies every start keeps apt from launching them.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  own_policy=true
fi
trap '[ "$own_policy" = true ] && rm -f "$policy"' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
