#!/usr/bin/env bash
# Installs what the MariaDB lab needs on a fresh Debian 12 machine: Debian's MariaDB
# 10.11 server (mariadbd, mariadb-install-db) and client. Idempotent: does nothing when
# both are there. The lab starts its own mariadbd processes with their own datadirs
# and ports; the Debian service on 3306 is stopped and disabled, so a stray server
# never answers a client that meant a lab member.
set -euo pipefail

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

need=()
command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || need+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)

if ((${#need[@]} > 0)); then
    echo "37-mariadb: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d 101 keeps the package's maintainer scripts from starting the service.
    policy=/usr/sbin/policy-rc.d
    created_policy=false
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
        $SUDO chmod +x $policy
        created_policy=true
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
    if $created_policy; then $SUDO rm -f $policy; fi
else
    echo "37-mariadb: mariadbd and the mariadb client already installed"
fi

# Whatever started it (an earlier install without the policy), the Debian service must
# not run or start at boot on the default port.
if command -v systemctl >/dev/null 2>&1; then
    # disable works without a running systemd (it removes the unit's symlinks).
    if [[ -L /etc/systemd/system/multi-user.target.wants/mariadb.service ]]; then
        $SUDO systemctl disable mariadb >/dev/null 2>&1 || true
    fi
    if [[ -d /run/systemd/system ]]; then $SUDO systemctl stop mariadb >/dev/null 2>&1 || true; fi
fi
if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/mariadb ]]; then
    $SUDO update-rc.d mariadb disable >/dev/null 2>&1 || true
fi
if pid=$(cat /run/mysqld/mysqld.pid 2>/dev/null) && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    echo "37-mariadb: stopping the Debian service's server (pid $pid)"
    if [[ -x /etc/init.d/mariadb ]]; then $SUDO /etc/init.d/mariadb stop >/dev/null 2>&1 || true; fi
fi
PATH="$PATH:/usr/sbin" mariadbd --version
