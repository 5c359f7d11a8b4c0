#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback, for mixscope's Slurm tests (tests/it/slurm.rs).
#
#   scripts/slurm-cluster.sh start DIR   install (Debian: slurmctld slurmd slurm-client munge) if
#                                        needed, write DIR/slurm.conf, start munged, slurmctld and
#                                        slurmd; prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-cluster.sh stop DIR    stop the daemons started from DIR
#   scripts/slurm-cluster.sh test        start a cluster in a temporary directory, run
#                                        `cargo test --release --test it slurm::` against it, stop it
#
# Needs root (the daemons run as root; munge's key is the package's). The node is this machine
# under its own host name, with 2 CPUs and 1000 MB for jobs, in partition `debug`; a second
# partition `tiny` has a 1-minute time limit. Ports 16817/16818 on 127.0.0.1.
set -euo pipefail

cmd=${1:-}
dir=${2:-}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm-cluster: Slurm is not installed and this is not a root Debian machine" >&2
    exit 1
  fi
  echo "slurm-cluster: installing slurmctld slurmd slurm-client munge" >&2
  (apt-get update -qq || true)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return # a munged is already answering
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1 && command -v runuser >/dev/null; then
    runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force
  else
    /usr/sbin/munged --force
  fi
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "slurm-cluster: munged does not answer" >&2
  exit 1
}

start() {
  [ -n "$dir" ] || { echo "usage: $0 start DIR" >&2; exit 2; }
  install
  mkdir -p "$dir"/state "$dir"/spool "$dir"/log
  dir=$(cd "$dir" && pwd)
  local host
  host=$(hostname -s)
  cat >"$dir/slurm.conf" <<EOF
# Written by mixscope's scripts/slurm-cluster.sh: one node on loopback.
ClusterName=mixscope-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=tiny Nodes=$host MaxTime=1 State=UP
EOF
  start_munge
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld
  slurmd
  for _ in $(seq 100); do
    if sinfo -h -p debug -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$dir/slurm.conf"
      return
    fi
    sleep 0.2
  done
  echo "slurm-cluster: the node did not come up; logs in $dir/log" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  exit 1
}

stop() {
  [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
  export SLURM_CONF="$dir/slurm.conf"
  scancel --user="$(id -un)" 2>/dev/null || true
  for p in slurmd slurmctld; do
    if [ -s "$dir/$p.pid" ]; then
      kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
    fi
  done
  sleep 0.5
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  test)
    dir=$(mktemp -d /tmp/mixscope-slurm.XXXXXX)
    trap 'stop' EXIT
    start >/dev/null
    export SLURM_CONF="$dir/slurm.conf"
    # The tests must find the cluster: not finding it is a failure here, not a skip.
    MIXSCOPE_SLURM_TEST=require cargo test --release --test it slurm:: -- --nocapture
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR | test" >&2
    exit 2
    ;;
esac
