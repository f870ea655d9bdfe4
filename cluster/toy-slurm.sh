#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try ics's SLURM launcher without a real cluster.
#
#   sudo cluster/toy-slurm.sh          install (Debian/Ubuntu packages), configure, start; idempotent
#   sudo cluster/toy-slurm.sh status   does a scheduler answer? (exit status 0 / 1)
#   sudo cluster/toy-slurm.sh stop     stop the two SLURM daemons it started (the configuration stays)
#
# Then, from any directory (ICS_DATA_ROOT pointing at the data, as for local runs):
#   sinfo                                                       partitions debug (default) and urgent
#   ics run -m hydra/launcher=slurm model.norm=none,batch trainer.steps=2000
#   squeue                                                      the sweep's jobs: one job array
#
# What it sets up, and why (each point was needed to run SLURM 22.05 in a container without systemd):
#   * munge authenticates every SLURM message: munged runs as the `munge` user with the key in
#     /etc/munge (the Debian package makes one; a fresh one is made if it is missing).
#   * slurm.conf: one node (this machine: all its CPUs, 90% of its memory), SlurmUser=root,
#     ProctrackType=proctrack/linuxproc and SelectType=select/cons_tres; no cgroups anywhere, and
#     deliberately no cgroup.conf (22.05 has no "disabled" cgroup plugin). TaskPlugin=task/affinity
#     pins each job to the CPUs it was given, as on a real cluster; where that plugin cannot start,
#     the script falls back to task/none.
#   * no accounting database, so `sacct` fails here; ics's hydra/launcher=slurm never needs it.
#   * fast turnaround for a handful of short jobs: AuthInfo=cred_expire=10 lets a requeued job (time
#     limit, pre-emption) start again 10 s after its requeue instead of SLURM's default 120 s, and
#     the schedulers look at pending jobs every 2 s (main) and 5 s (backfill) instead of 60 s and 30 s.
#   * pre-emption to try out: partition `urgent` (higher PriorityTier) pre-empts jobs of `debug`,
#     which get their --signal at once (preempt_send_user_signal), 30 s of grace, and are requeued:
#     sbatch -p urgent --exclusive --wrap "sleep 10"
#   * slurmctld and slurmd run as root, started directly (no systemd).
#
# Files: /etc/slurm/slurm.conf (never overwritten if this script did not write it),
# /var/spool/ics-toy-slurm (state, pid files), /var/log/ics-toy-slurm (daemon logs).
# Exit status: 0 when the scheduler answers and its node takes jobs; 1 otherwise, with the reason.
set -uo pipefail

MARK="# written by ics cluster/toy-slurm.sh"
CONF=/etc/slurm/slurm.conf
SPOOL=/var/spool/ics-toy-slurm
LOGS=/var/log/ics-toy-slurm
PARTITION=debug
NODE="$(hostname -s)"

say() { echo "toy-slurm: $*" >&2; }
die() { say "$*"; exit 1; }

answers() {  # the controller answers and the node takes jobs (a trailing * would mean: not responding)
  local state
  state="$(timeout 5 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1)"
  [[ "$state" =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]
}

alive() {  # a daemon this script started, found by its pid file
  local pid
  pid="$(cat "$SPOOL/$1.pid" 2>/dev/null)" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop() {  # only the daemons this script started (their pid files), never others
  local d pid
  for d in slurmd slurmctld; do
    if alive "$d"; then
      pid="$(cat "$SPOOL/$d.pid")"
      kill "$pid" && say "stopped $d (pid $pid)"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  return 0
}

conf() {  # slurm.conf for this machine, with task plugin $1
  local cpus mem_mb
  cpus="$(nproc --all)"
  mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
  cat <<EOF
$MARK ($1)
ClusterName=ics-toy
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$SPOOL/slurmctld.pid
SlurmdPidFile=$SPOOL/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=$1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=30
MinJobAge=600
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=urgent Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
}

install() {  # about 15 s; `apt-get update` only when the package lists do not have the packages
  local pkgs=(slurm-wlm munge) log=/tmp/ics-toy-slurm-apt.log
  command -v apt-get >/dev/null || die "no apt-get: install ${pkgs[*]} with this system's package manager"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >"$log" 2>&1; then
    apt-get update -q >>"$log" 2>&1
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1 \
      || die "apt-get install ${pkgs[*]} failed (see $log)"
  fi
  say "installed ${pkgs[*]}"
}

start_munge() {
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  chmod 0400 /etc/munge/munge.key
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munge does not answer"
}

start_slurm() {  # with the configuration in $CONF; 0 when the node takes jobs within ~20 s
  mkdir -p "$SPOOL/ctld" "$SPOOL/d" "$LOGS"
  alive slurmctld || slurmctld || return 1
  alive slurmd || slurmd || return 1
  local state
  for _ in $(seq 100); do
    answers && return 0
    state="$(timeout 5 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1)"
    if [[ "$state" == down* || "$state" == drain* ]]; then
      scontrol update nodename="$NODE" state=resume >/dev/null 2>&1
    fi
    alive slurmd || return 1
    sleep 0.2
  done
  return 1
}

case "${1:-start}" in
  start) ;;
  stop) stop; exit 0 ;;
  status)
    if answers; then sinfo; exit 0; fi
    say "no scheduler answers: $(timeout 5 sinfo -h 2>&1 | head -1)"
    exit 1 ;;
  *) die "usage: $0 [start|status|stop]" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"
# already running with this script's configuration: nothing to do
if command -v sinfo >/dev/null && grep -qF "$MARK" "$CONF" 2>/dev/null && answers; then
  plugin="$(sed -n 's/^TaskPlugin=//p' "$CONF")"
  if cmp -s <(conf "$plugin") "$CONF"; then
    say "already running: $(sinfo -h -o '%P %t' | tr '\n' ' ')"
    exit 0
  fi
fi
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  die "$CONF exists and was not written by this script; not touching it"
fi
for cmd in slurmctld slurmd sbatch munged; do
  command -v "$cmd" >/dev/null || { install; break; }
done
start_munge
for plugin in task/affinity task/none; do
  if ! cmp -s <(conf "$plugin") "$CONF" 2>/dev/null; then
    stop  # a changed configuration needs fresh daemons
    mkdir -p /etc/slurm
    conf "$plugin" >"$CONF"
    chmod 0644 "$CONF"
  fi
  if start_slurm; then
    say "ready: $(sinfo -h -o '%P' | tr '\n' ' ')on node $NODE ($(nproc --all) CPUs), $plugin"
    exit 0
  fi
  say "SLURM did not start with TaskPlugin=$plugin (see $LOGS/)"
  stop
done
die "the node did not take jobs: $(timeout 5 sinfo -h 2>&1 | head -1) (see $LOGS/)"
