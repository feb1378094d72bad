#!/usr/bin/env bash
# Installs the Debian tools the test suite drives, when they are missing and we may (root):
#   chromium      the browser tests (Playwright drives Debian's chromium)
#   prometheus    promtool checks and unit-tests deploy/prometheus's alerting rules
#   wabt          wast2json turns the WebAssembly spec tests (../shared/wasm-spec-tests) into modules
#   haproxy       the replicated topology's balancer (tests/replicated, the chaos tier, bench/load)
#   redis-server  the machine's Redis, and the chaos tier's replicated topology starts its own
# Used by `make test` and `.ci/run`. Without root it only says what is missing (those tests
# are skipped outside CI; in CI a skip fails the run).
set -euo pipefail
missing=()
have() { command -v "$1" >/dev/null 2>&1 || test -x "/usr/sbin/$1" || test -x "/usr/bin/$1"; }
have promtool || missing+=(prometheus)
have wast2json || missing+=(wabt)
have haproxy || missing+=(haproxy)
have redis-server || missing+=(redis-server)
need_chromium=false
test -x /usr/bin/chromium || need_chromium=true
if ! $need_chromium && [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian tools (install them as root): ${missing[*]} $($need_chromium && echo chromium)" >&2
  exit 0
fi
apt-get update -qq
if $need_chromium; then  # with its recommended fonts, as the screenshots expect
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
