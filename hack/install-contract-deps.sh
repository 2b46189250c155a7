#!/usr/bin/env bash
# Install the programs that the contract tests run for real: nginx, PostgreSQL and Redis, from
# Debian's packages. Does nothing when they are already there, so a warm machine pays nothing.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if ((${#missing[@]} == 0)); then
  echo "contract test programs are installed: nginx, postgresql, redis-server"
  exit 0
fi
if [[ "$(id -u)" != 0 ]] && ! command -v sudo >/dev/null 2>&1; then
  echo "missing ${missing[*]}: install them with apt-get as root, or run as root" >&2
  exit 1
fi
SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO=sudo
echo "installing ${missing[*]} from Debian's packages"
# The packages' own services must not start: the tests run each program on a free port.
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"
