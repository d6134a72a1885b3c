#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the Slurm backend's tests.
#
#   scripts/slurm-local.sh up       install (Debian packages) if needed, start munged, slurmctld and
#                                   slurmd, wait until the node is idle; idempotent
#   scripts/slurm-local.sh status   each daemon's state and sinfo; exit 0 only when the node is usable
#   scripts/slurm-local.sh down     cancel this cluster's jobs, stop the daemons `up` started (by their
#                                   pid files); packages and the state dir stay
#   scripts/slurm-local.sh env      print the line to eval: export SLURM_CONF=...
#
# Everything (munge key and socket, slurm.conf, controller state, spool, logs, pid files) lives in
# PIXELX_SLURM_DIR (default /tmp/pixelx-slurm); /etc/slurm and /etc/munge are never read or written,
# so an existing slurm.conf or munged from the Debian packages is left alone. Slurm's commands find
# this cluster through SLURM_CONF, which the caller must export:
#   eval "$(scripts/slurm-local.sh env)"       # i.e. export SLURM_CONF=/tmp/pixelx-slurm/etc/slurm.conf
# Jobs inherit it from the submitting shell (sbatch exports the environment by default).
#
# Root is needed (apt-get; slurmd runs jobs as the submitting user). No systemd: the daemons are
# started directly and daemonize themselves, writing pid files into the state dir.
#
# Environment:
#   PIXELX_SLURM_DIR          state dir (default /tmp/pixelx-slurm; keep it short: it holds a socket)
#   PIXELX_SLURM_PORT         slurmctld's port, slurmd uses the next one (default 6817)
#   PIXELX_SLURM_CPUS         declare this many CPUs instead of slurmd -C's count (more job slots
#                             than cores, for tests; sets SlurmdParameters=config_overrides)
#   PIXELX_SLURM_GPUS         N > 0: GresTypes=gpu, gres.conf with the first N /dev/nvidia<k>, the
#                             node gets Gres=gpu:N; jobs asking --gres=gpu:k get CUDA_VISIBLE_DEVICES
#                             (not enforced: no cgroups). Tested only with stand-in device files.
#   PIXELX_SLURM_GPU_FILES    space-separated device files to use instead of /dev/nvidia[0-9]*
#                             (e.g. "/dev/null /dev/zero" to try the GPU mode without GPUs)
#   PIXELX_SLURM_MIN_JOB_AGE  seconds a finished job stays visible to scontrol/squeue (default 300)
#   PIXELX_SLURM_KILL_WAIT    seconds between SIGTERM and SIGKILL on cancel/timeout (default 10)
#   PIXELX_SLURM_TIMEOUT      seconds `up` waits for the node to be idle (default 60)
#   PIXELX_SLURM_EXTRA_CONF   lines appended to slurm.conf (later settings win), e.g.
#                             "RequeueExit=75" to have jobs exiting with 75 requeued by Slurm
# Settings take effect when the daemons start: after changing them, run `down` then `up`.
set -euo pipefail

dir="${PIXELX_SLURM_DIR:-/tmp/pixelx-slurm}"
conf="$dir/etc/slurm.conf"
port="${PIXELX_SLURM_PORT:-6817}"
gpus="${PIXELX_SLURM_GPUS:-0}"
cpus_override="${PIXELX_SLURM_CPUS:-}"
min_job_age="${PIXELX_SLURM_MIN_JOB_AGE:-300}"
kill_wait="${PIXELX_SLURM_KILL_WAIT:-10}"
timeout="${PIXELX_SLURM_TIMEOUT:-60}"
extra_conf="${PIXELX_SLURM_EXTRA_CONF:-}"
munge_socket="$dir/run/munge.socket"
node="$(hostname -s)"
export SLURM_CONF="$conf"

log() { echo "slurm-local: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  echo "usage: $0 up|down|status|env" >&2
  exit 2
}

# --- processes -------------------------------------------------------------------------------

pidfile() { echo "$dir/run/$1.pid"; }

# The pid in a daemon's pid file, if that process is alive and is that daemon.
running_pid() {
  local f pid
  f="$(pidfile "$1")"
  [[ -s "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$1" || return 1
  echo "$pid"
}

# SIGTERM to the named daemons at once (each takes ~2 s to shut down), SIGKILL after 10 s.
stop_daemons() {
  local name pid pids=() i
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < 100; i++)); do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && break
      pid=""
    done
    [[ -z "${pid:-}" ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop in 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$(pidfile "$name")"; done
}

# Processes started by this cluster's slurmd (slurmstepd and the jobs under it) carry SLURM_CONF
# pointing at our config in their environment: the daemons are started with it.
leftover_pids() {
  local p
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" == "$$" ]] && continue
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q '^slurmstepd' || continue
    if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$conf"; then
      echo "${p#/proc/}"
    fi
  done
}

kill_tree() {
  local child
  kill -STOP "$1" 2>/dev/null || true
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null || true
}

log_tails() {
  local f
  for f in "$dir"/log/*.log; do
    [[ -e "$f" ]] || continue
    echo "--- tail of $f" >&2
    tail -n 25 "$f" >&2
  done
}

# --- install ---------------------------------------------------------------------------------

install_packages() {
  local missing=() cmd
  for cmd in slurmctld slurmd sbatch munged; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "${missing[*]} not installed, and installing needs root"
  log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
  if ! apt-cache show slurmctld slurmd slurm-client munge >/dev/null 2>&1; then
    apt-get update -q
  fi
  # Keep the packages' init scripts from starting the system munged/slurm daemons (with their
  # /etc configuration) during installation: we start our own. Docker-style images already have
  # such a policy-rc.d; add one only for the install if there is none.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client munge >"$dir/log/apt.log" 2>&1 || rc=$?
  [[ -n "$added_policy" ]] && rm -f "$policy"
  if ((rc != 0)); then
    tail -n 30 "$dir/log/apt.log" >&2
    die "apt-get install failed (log: $dir/log/apt.log)"
  fi
}

# --- configuration ---------------------------------------------------------------------------

munge_key() {
  local key="$dir/munge/munge.key"
  [[ -s "$key" ]] && return 0
  log "creating munge key $key"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$key"
  else
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
  fi
  chmod 0400 "$key"
}

# The node line from slurmd -C: "NodeName=x CPUs=2 Boards=1 ... RealMemory=24000".
node_hardware() {
  local hw
  hw="$(slurmd -C | head -n 1)"
  [[ "$hw" == NodeName=* ]] || die "unexpected slurmd -C output: $hw"
  hw="${hw#NodeName=* }"
  if [[ -n "$cpus_override" ]]; then
    [[ "$cpus_override" =~ ^[1-9][0-9]*$ ]] || die "PIXELX_SLURM_CPUS must be a positive integer"
    local mem
    mem="$(grep -o 'RealMemory=[0-9]*' <<<"$hw")"
    hw="CPUs=$cpus_override Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus_override ThreadsPerCore=1 $mem"
  fi
  echo "$hw"
}

# The first $gpus GPU device files: /dev/nvidia0, /dev/nvidia1, ... (not nvidiactl/nvidia-uvm).
gpu_devices() {
  local devs=() d
  # shellcheck disable=SC2206 # a space-separated list on purpose
  local candidates=(${PIXELX_SLURM_GPU_FILES:-/dev/nvidia[0-9]*})
  for d in "${candidates[@]}"; do
    [[ -e "$d" ]] && devs+=("$d")
  done
  ((${#devs[@]} >= gpus)) || die "PIXELX_SLURM_GPUS=$gpus but only ${#devs[@]} GPU device files (${candidates[*]})"
  printf '%s\n' "${devs[@]}" | sort -V | head -n "$gpus"
}

write_config() {
  local hw cpus mem def_mem gres_node="" gres_types="" overrides=""
  hw="$(node_hardware)"
  cpus="$(grep -o 'CPUs=[0-9]*' <<<"$hw" | cut -d= -f2)"
  mem="$(grep -o 'RealMemory=[0-9]*' <<<"$hw" | cut -d= -f2)"
  def_mem=$((mem / cpus))
  [[ -n "$cpus_override" ]] && overrides="SlurmdParameters=config_overrides"
  if [[ "$gpus" =~ ^[0-9]+$ ]] && ((gpus > 0)); then
    gres_types="GresTypes=gpu"
    gres_node=" Gres=gpu:$gpus"
    {
      echo "# written by scripts/slurm-local.sh (PIXELX_SLURM_GPUS=$gpus)"
      echo "AutoDetect=off"
      gpu_devices | while read -r d; do echo "NodeName=$node Name=gpu File=$d"; done
    } >"$dir/etc/gres.conf"
  else
    [[ "$gpus" =~ ^[0-9]+$ ]] || die "PIXELX_SLURM_GPUS must be a number"
    rm -f "$dir/etc/gres.conf"
  fi
  cat >"$conf" <<EOF
# Written by scripts/slurm-local.sh: a single-node test cluster. Regenerated by \`up\` whenever
# its daemons are not running.
ClusterName=pixelx
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
# Our own munged (own key and socket), not the system one.
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued batch job is held (Reason=BeginTime) until its previous launch
# credential expires: cred_expire + 1 s (default 120 s). 5 is the minimum (a smaller value is
# rejected and 120 used).
AuthInfo=socket=$munge_socket,cred_expire=5

StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/slurmd
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups (none needed, none configured): processes are tracked through /proc, no CPU/memory
# binding or enforcement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
# No accounting daemon: sacct does not work; finished jobs are seen through scontrol/squeue
# only, for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true

# Cores and memory are consumable: --mem is checked against the node, and a job without --mem
# gets DefMemPerCPU per CPU (node memory / CPUs) instead of the whole node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
$gres_types
$overrides

# Fast test cluster:
# - schedule on every submit/finish, and at least every second (default 60 s), no batching delay
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,batch_sched_delay=0,bf_interval=1
# - finished jobs stay visible to scontrol show job / squeue for this long (s)
MinJobAge=$min_job_age
# - SIGTERM .. SIGKILL grace on scancel and time limit (default 30 s)
KillWait=$kill_wait
# - a node that was DOWN becomes usable again as soon as its slurmd registers
ReturnToService=2
# - notice a dead slurmd / slurmctld after 30 s (defaults 300 s / 120 s)
SlurmdTimeout=30
SlurmctldTimeout=30
# - no job is killed for idle srun/salloc
InactiveLimit=0
# - batch jobs are requeueable unless submitted with --no-requeue (the default, stated)
JobRequeue=1

NodeName=$node NodeAddr=127.0.0.1 $hw$gres_node State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP

# PIXELX_SLURM_EXTRA_CONF:
${extra_conf}
EOF
}

# --- daemons ---------------------------------------------------------------------------------

start_munged() {
  running_pid munged >/dev/null && return 0
  log "starting munged"
  rm -f "$munge_socket" "$munge_socket.lock"
  munged --key-file="$dir/munge/munge.key" --socket="$munge_socket" \
    --pid-file="$(pidfile munged)" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" ||
    {
      log_tails
      die "munged did not start"
    }
  munge -n -S "$munge_socket" | unmunge -S "$munge_socket" >/dev/null ||
    die "munge round trip through $munge_socket failed"
}

start_slurm_daemon() {
  local name="$1" i
  running_pid "$name" >/dev/null && return 0
  log "starting $name"
  "$name" -f "$conf" >>"$dir/log/$name.out" 2>&1 || {
    cat "$dir/log/$name.out" >&2
    log_tails
    die "$name failed to start"
  }
  for ((i = 0; i < 50; i++)); do
    running_pid "$name" >/dev/null && return 0
    sleep 0.1
  done
  log_tails
  die "$name exited after starting"
}

node_state() { sinfo --noheader --nodes="$node" --format=%t 2>/dev/null | head -n 1; }

wait_idle() {
  local deadline=$((SECONDS + timeout)) state="" resumed=""
  while ((SECONDS < deadline)); do
    state="$(node_state || true)"
    case "$state" in
      idle | mix | alloc | comp) return 0 ;;
      drain | drng | drain\* | down)
        # ReturnToService=2 returns a DOWN node on registration; a DRAINed one (e.g. after a
        # job's processes could not be killed) needs an explicit resume.
        if [[ -z "$resumed" ]] && running_pid slurmd >/dev/null; then
          log "node $node is $state: resuming it"
          scontrol update NodeName="$node" State=RESUME || true
          resumed=1
        fi
        ;;
    esac
    sleep 0.5
  done
  sinfo >&2 || true
  scontrol show node "$node" >&2 || true
  log_tails
  die "node $node not idle after ${timeout}s (state: ${state:-none})"
}

# --- commands --------------------------------------------------------------------------------

cmd_up() {
  mkdir -p "$dir"/{etc,log,run,munge,state/ctld,state/slurmd}
  chmod 0700 "$dir/munge"
  chmod 0755 "$dir" "$dir/run"
  install_packages
  if ! running_pid slurmctld >/dev/null && ! running_pid slurmd >/dev/null; then
    write_config
  fi
  munge_key
  start_munged
  start_slurm_daemon slurmctld
  start_slurm_daemon slurmd
  wait_idle
  log "node $node is $(node_state); cluster up. The caller needs:"
  echo "export SLURM_CONF=$conf"
}

cmd_down() {
  local ids pid i
  if running_pid slurmctld >/dev/null; then
    ids="$(squeue --noheader --format=%A 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
      log "cancelling jobs: $(echo "$ids" | tr '\n' ' ')"
      # shellcheck disable=SC2086 # one job id per word
      scancel $ids || true
      for ((i = 0; i < (kill_wait + 10) * 2; i++)); do
        [[ -z "$(squeue --noheader --states=RUNNING,COMPLETING,CONFIGURING --format=%A 2>/dev/null)" ]] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemons slurmd slurmctld
  stop_daemons munged
  for pid in $(leftover_pids); do
    log "killing leftover slurmstepd $pid and its processes"
    kill_tree "$pid"
  done
  log "down"
}

cmd_status() {
  local ok=0 name pid state
  for name in munged slurmctld slurmd; do
    if pid="$(running_pid "$name")"; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: not running"
      ok=1
    fi
  done
  echo "SLURM_CONF=$conf"
  if ((ok == 0)); then
    sinfo || ok=1
    state="$(node_state || true)"
    case "$state" in
      idle | mix | alloc | comp) ;;
      *) ok=1 ;;
    esac
  fi
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) usage ;;
esac
