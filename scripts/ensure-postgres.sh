#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 (trust auth) for the database tests.
set -euo pipefail
listening() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
wait_for() { local i; for ((i = 0; i < $1 * 10; i++)); do listening && return 0; sleep 0.1; done; return 1; }
if listening; then echo "ensure-postgres: PostgreSQL ready"; exit 0; fi
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing postgresql from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  v="$(ls /etc/postgresql | head -1)"
  sed -i 's/^\(host.*127.0.0.1\/32\s*\)\S*$/\1trust/; s/^\(local\s*all\s*postgres\s*\)\S*$/\1trust/' \
    "/etc/postgresql/$v/main/pg_hba.conf"
  pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
else
  echo "ensure-postgres: no PostgreSQL on 127.0.0.1:5432 and cannot install one" >&2; exit 1
fi
wait_for 60 || { echo "ensure-postgres: PostgreSQL did not start" >&2; exit 1; }
echo "ensure-postgres: PostgreSQL ready"
