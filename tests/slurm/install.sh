#!/usr/bin/env bash
# Installs what tests/slurm/cluster.py needs on Debian bookworm (as root): SLURM 22.05 (slurmctld,
# slurmd, client commands), munge, and slurmdbd with a MariaDB server for the accounting database
# that the tests read (sacct). Nothing is started or enabled: cluster.py starts its own daemons from
# a temporary folder and stops them again. Takes about 50 s on a fresh machine.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "error: run as root (apt-get)" >&2
    exit 1
fi

# Keep package scripts from starting munge/mariadb/slurm services (Docker images ship this file;
# a bare machine may not). Only a file we created here is removed again.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=yes
fi
trap 'if [[ -n $created_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge slurmdbd mariadb-server

dpkg-query -W -f='${Package} ${Version}\n' slurmctld slurmd slurmdbd munge mariadb-server
