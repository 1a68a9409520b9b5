#!/usr/bin/env bash
# Make sure a RabbitMQ answers at AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) with
# the management and prometheus plugins enabled. Starts a local broker, or installs it from
# Debian's packages, where the machine allows; otherwise fails with a clear message.
set -euo pipefail

url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=5672
local_broker=0
case "$host" in 127.*|localhost|::1) local_broker=1 ;; esac

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do listening "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

if ! listening "$host" "$port"; then
  if [ "$local_broker" != 1 ]; then
    echo "ensure-rabbitmq: nothing answers at $host:$port and it is not this machine; start it or fix AMQP_URL" >&2
    exit 1
  fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "ensure-rabbitmq: installing rabbitmq-server from Debian's packages"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
    else
      echo "ensure-rabbitmq: no RabbitMQ at $host:$port and cannot install one (need root and apt-get)" >&2
      exit 1
    fi
  fi
  echo "ensure-rabbitmq: starting rabbitmq-server"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  if ! wait_for "$host" "$port" 90; then
    echo "ensure-rabbitmq: rabbitmq-server did not start listening on $port within 90 s" >&2
    exit 1
  fi
fi

if [ "$local_broker" = 1 ] && command -v rabbitmq-plugins >/dev/null 2>&1; then
  rabbitmqctl await_startup >/dev/null 2>&1 || true
  rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >/dev/null
  # Connection details reach the management API every statistics interval; the lease's
  # force-release looks the holder's connection up there, so keep the interval short.
  rabbitmqctl eval 'application:set_env(rabbit, collect_statistics_interval, 500).' >/dev/null 2>&1 || true
  if ! wait_for "$host" 15672 60; then
    echo "ensure-rabbitmq: the management API did not come up on 15672" >&2
    exit 1
  fi
fi
echo "ensure-rabbitmq: RabbitMQ ready at $host:$port"
