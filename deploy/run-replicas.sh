#!/usr/bin/env bash
# Start N governor-stub replicas on one PostgreSQL and one Redis, behind HAProxy.
#
#   GOVSTUB_DB_URL=postgresql+psycopg://governor@db.example/governance \
#   GOVSTUB_REDIS_URL=redis://cache.example:6379/0 \
#   GOVSTUB_SECRET_KEY="$(cat /etc/governor/secret)" \
#   deploy/run-replicas.sh 3 [governor-stub flags for every replica, e.g. --demo]
#
# Every replica gets the same database, Redis, secret and public URL (the balancer's);
# each its own port (REPLICA_BASE_PORT, +1, ...) and data directory under WORK_DIR.
# Stops everything when interrupted or when any process exits. See deploy/README.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
n="${1:-2}"
shift || true
: "${GOVSTUB_DB_URL:?set GOVSTUB_DB_URL=postgresql+psycopg://USER@HOST/DB: every replica shares it}"
: "${GOVSTUB_REDIS_URL:?set GOVSTUB_REDIS_URL=redis://HOST:6379/0: every replica shares it}"
: "${GOVSTUB_SECRET_KEY:?set GOVSTUB_SECRET_KEY to one secret (32+ random bytes) for all replicas}"
bind="${GOVERNOR_LB_BIND:-127.0.0.1:8080}"
stats="${GOVERNOR_LB_STATS:-127.0.0.1:8404}"
host="${REPLICA_HOST:-127.0.0.1}"
base="${REPLICA_BASE_PORT:-8001}"
work="${WORK_DIR:-$PWD/replicas}"
stub="${STUB:-governor-stub}"
haproxy="${HAPROXY:-haproxy}"
python="${PYTHON:-python3}"
export GOVSTUB_DB_URL GOVSTUB_REDIS_URL GOVSTUB_SECRET_KEY
export GOVSTUB_PUBLIC_URL="${GOVSTUB_PUBLIC_URL:-http://$bind}"

mkdir -p "$work"
pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop_all EXIT INT TERM

servers=()
for i in $(seq 1 "$n"); do
  port=$((base + i - 1))
  # Started together: they migrate once between them (an advisory lock on PostgreSQL).
  # shellcheck disable=SC2086  # STUB may be a command with arguments
  GOVSTUB_DATA_DIR="$work/replica-$i" $stub --host "$host" --port "$port" "$@" &
  pids+=("$!")
  servers+=("$host:$port")
done

"$python" "$here/render_haproxy.py" --bind "$bind" --stats "$stats" "${servers[@]}" \
  > "$work/haproxy.cfg"
"$haproxy" -c -q -f "$work/haproxy.cfg"
# -db: stay in the foreground, so this script owns it.
"$haproxy" -db -f "$work/haproxy.cfg" &
pids+=("$!")
echo "balancer on http://$bind (stats http://$stats/stats), replicas ${servers[*]}"
wait -n
