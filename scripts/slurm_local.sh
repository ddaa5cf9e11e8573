#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for CI and for trying the SLURM profile locally.
#
#   scripts/slurm_local.sh start    install (Debian packages) if needed, write slurm.conf, start munged,
#                                   slurmctld and slurmd, wait until `sinfo` shows the node idle
#   scripts/slurm_local.sh stop     stop the daemons by PID and move slurm.conf out of the way
#   scripts/slurm_local.sh status   print the daemons' state and `sinfo`
#
# Why the config is moved away on stop: when the SLURM client and /etc/slurm/slurm.conf are present but the
# controller is down, every snakemake call (local runs too) waits ~10 s for it.
#
# Recipe measured in /work/shared/notes/slurm-local.md: no systemd, no cgroups (proctrack/linuxproc,
# task/none), no accounting daemon (the profile therefore uses `slurm-status-command: squeue`, which needs
# MinJobAge >= 120 s so finished jobs stay visible).
#
# Environment:
#   SLURM_LOCAL_GPUS   simulated GPUs on the node (default 1; 0 = none). They let jobs that ask for
#                      `gres: gpu:1` be scheduled on a CPU-only machine (File=/dev/null, no real device).
#   SLURM_LOCAL_WAIT   seconds to wait for the node to become idle (default 60)
#   SLURM_LOCAL_NO_INSTALL=1   never run apt-get (exit 4 if the packages are missing)
#
# Exit codes: 0 ok (also: already running / already stopped), 1 the cluster failed to start or stop,
#             2 usage, 3 `status`: not running, 4 packages missing and cannot be installed (or not root).

set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
PARKED_DIR=/var/lib/slurm-local          # where the config goes while the cluster is stopped
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
LOG_DIR=/var/log/slurm
GPUS=${SLURM_LOCAL_GPUS:-1}
WAIT=${SLURM_LOCAL_WAIT:-60}
PACKAGES=(slurmctld slurmd slurm-client munge)
FAKE_GPU_FILES=(/dev/null /dev/zero /dev/full /dev/urandom)

say() { printf 'slurm_local: %s\n' "$*"; }
die() { local code=$1; shift; printf 'slurm_local: error: %s\n' "$*" >&2; exit "$code"; }

pid_alive() {  # pid_alive FILE -> 0 if FILE names a running process of that daemon (not a recycled pid)
  [[ -s $1 ]] || return 1
  local pid name
  pid=$(tr -dc '0-9' <"$1")
  name=$(basename "$1" .pid)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}

have_binaries() {
  command -v sinfo >/dev/null && [[ -x /usr/sbin/slurmctld && -x /usr/sbin/slurmd && -x /usr/sbin/munged ]]
}

ensure_packages() {
  have_binaries && return 0
  [[ ${SLURM_LOCAL_NO_INSTALL:-0} == 1 ]] && die 4 "SLURM packages missing (${PACKAGES[*]}) and SLURM_LOCAL_NO_INSTALL=1"
  command -v apt-get >/dev/null || die 4 "SLURM packages missing and apt-get not found (not a Debian system?)"
  say "installing ${PACKAGES[*]} (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}"; } \
      >"/tmp/slurm_local_apt.$$.log" 2>&1; then
    tail -n 20 "/tmp/slurm_local_apt.$$.log" >&2 || true
    die 4 "apt-get install ${PACKAGES[*]} failed (log: /tmp/slurm_local_apt.$$.log)"
  fi
  rm -f "/tmp/slurm_local_apt.$$.log"
  have_binaries || die 4 "packages installed but slurmctld/slurmd/munged/sinfo still not found"
}

write_config() {
  local cpus mem_mb gres_line="" tmp
  cpus=$(nproc)
  # leave 1 GiB to the OS; slurmd refuses to start if RealMemory exceeds what it finds
  mem_mb=$(awk '/MemTotal/ {m = int($2 / 1024) - 1024; if (m < 512) m = 512; print m}' /proc/meminfo)
  mkdir -p "$CONF_DIR"
  if [[ $GPUS -gt 0 ]]; then
    gres_line=" Gres=gpu:$GPUS"
    tmp=$(mktemp "$CONF_DIR/.gres.conf.XXXXXX")
    {
      echo "# simulated GPUs for scheduling tests (scripts/slurm_local.sh); no real device behind them"
      echo "AutoDetect=off"
      # slurmd needs one distinct existing device file per GPU (it rejects duplicates and missing files)
      for ((i = 0; i < GPUS; i++)); do echo "NodeName=localhost Name=gpu File=${FAKE_GPU_FILES[$i]}"; done
    } >"$tmp"
    chmod 644 "$tmp"; mv -f "$tmp" "$GRES_CONF"
  else
    rm -f "$GRES_CONF"
  fi
  tmp=$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")
  cat >"$tmp" <<EOF
# written by scripts/slurm_local.sh: a localhost-only test cluster; moved to $PARKED_DIR on stop
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
Waittime=0
$( [[ $GPUS -gt 0 ]] && echo "GresTypes=gpu" )
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem_mb$gres_line State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE DefMemPerCPU=1000 State=UP
EOF
  chmod 644 "$tmp"; mv -f "$tmp" "$CONF"
}

park_config() {  # move the cluster's config out of the way (see header)
  local f moved=0
  mkdir -p "$PARKED_DIR"
  for f in "$CONF" "$GRES_CONF"; do
    if [[ -e $f ]]; then mv -f "$f" "$PARKED_DIR/$(basename "$f")"; moved=1; fi
  done
  [[ $moved == 1 ]] && say "moved slurm.conf to $PARKED_DIR/ (snakemake would otherwise wait for a controller that is down)"
  return 0
}

node_state() { sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -n1 | tr -d ' *' || true; }

running() { pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" && pid_alive "$MUNGE_PID"; }

start_munge() {
  pid_alive "$MUNGE_PID" && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged || die 1 "munged failed to start (see /var/log/munge/munged.log)"
}

failed_start() {  # failed_start MESSAGE: undo a half start, then exit 1
  say "$1; last log lines:" >&2
  tail -n 5 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
  stop_daemons >&2
  park_config >&2
  die 1 "cluster failed to start"
}

do_start() {
  [[ $(id -u) == 0 ]] || die 4 "must run as root (it installs packages and starts system daemons)"
  [[ $GPUS =~ ^[0-9]+$ && $GPUS -le ${#FAKE_GPU_FILES[@]} ]] \
    || die 2 "SLURM_LOCAL_GPUS=$GPUS: expected an integer from 0 to ${#FAKE_GPU_FILES[@]}"
  ensure_packages
  if running && [[ -e $CONF ]]; then
    say "already running (node: $(node_state))"
    return 0
  fi
  # a half-started cluster from an earlier attempt: stop it first so the config and the daemons agree
  if pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; then stop_daemons; fi
  mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
  write_config
  start_munge
  /usr/sbin/slurmctld || failed_start "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
  /usr/sbin/slurmd -N localhost || failed_start "slurmd failed to start (see $LOG_DIR/slurmd.log)"
  local t state=""
  for ((t = 0; t < WAIT * 2; t++)); do
    state=$(node_state)
    if [[ $state == idle ]]; then
      say "started: node localhost idle, partition debug, $(nproc) CPUs, ${GPUS} simulated GPU(s) ($((t / 2)) s)"
      return 0
    fi
    sleep 0.5
  done
  failed_start "node did not become idle within ${WAIT} s (state: '${state:-unknown}')"
}

stop_pidfile() {  # stop_pidfile FILE NAME: TERM, wait up to 15 s, then KILL
  local pid t
  pid_alive "$1" || { rm -f "$1"; return 0; }
  pid=$(tr -dc '0-9' <"$1")
  kill -TERM "$pid" 2>/dev/null || true
  for ((t = 0; t < 30; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$2 (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$1"
  say "stopped $2 (pid $pid)"
}

stop_daemons() {
  stop_pidfile "$SLURMD_PID" slurmd
  stop_pidfile "$CTLD_PID" slurmctld
  stop_pidfile "$MUNGE_PID" munged
}

do_stop() {
  [[ $(id -u) == 0 ]] || die 4 "must run as root"
  if ! pid_alive "$CTLD_PID" && ! pid_alive "$SLURMD_PID" && ! pid_alive "$MUNGE_PID"; then
    say "not running"
  else
    stop_daemons
  fi
  park_config
  if pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID" || pid_alive "$MUNGE_PID"; then
    die 1 "some daemons are still running"
  fi
  return 0
}

do_status() {
  local d f ok=1
  for d in munged:$MUNGE_PID slurmctld:$CTLD_PID slurmd:$SLURMD_PID; do
    f=${d#*:}
    if pid_alive "$f"; then say "${d%%:*}: running (pid $(tr -dc '0-9' <"$f"))"
    else say "${d%%:*}: not running"; ok=0; fi
  done
  if [[ -e $CONF ]]; then say "config: $CONF"; else say "config: absent (parked in $PARKED_DIR or never started)"; fi
  if [[ $ok == 1 ]]; then
    sinfo -N -o '%N %P %t %c %m %G' || true
    return 0
  fi
  return 3
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
