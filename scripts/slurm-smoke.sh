#!/usr/bin/env bash
# A real Slurm run of the grid example on this machine: brings up a single-node Slurm (munged,
# slurmctld, slurmd, as root, with a private config, socket, ports and state under $STATE, so
# nothing in /etc changes), submits examples/slurm/submit.sh on examples/tiny-grid.json (3 array
# tasks, then the dependent merge job), requeues the middle task while it trains (as a
# preemption would) and checks that it resumed its own shard, then checks that the merged
# results.csv equals an unsharded run's byte for byte. The daemons are stopped on exit; a
# second run first stops whatever an earlier one left. Needs: apt-get install slurm-wlm munge.
#
# Usage: scripts/slurm-smoke.sh   (from anywhere; VITPEFT_SLURM_DIR overrides $STATE)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${VITPEFT_SLURM_DIR:-/tmp/vitpeft-slurm-smoke}
VITPEFT="node $REPO/bin/vitpeft.js"
say() { echo "slurm-smoke: $*"; }
fail() { echo "slurm-smoke: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (the daemons and the jobs run as root here)"
for tool in munged slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$tool" >/dev/null || fail "$tool not found; install Slurm: apt-get install -y slurm-wlm munge"
done
[ -f "$REPO/dist/cli/main.js" ] || fail "build first (npm ci, or npx tsc -p tsconfig.json)"

stop_daemons() {
  for daemon in slurmd slurmctld munged; do
    local pidfile="$STATE/$daemon.pid"
    [ -f "$pidfile" ] || continue
    local pid
    pid=$(cat "$pidfile")
    # Only our own daemon: the process must still be that program.
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

stop_daemons
rm -rf "$STATE"
mkdir -p "$STATE/state" "$STATE/spool" "$STATE/work"
chmod 755 "$STATE"
trap 'stop_daemons; say "daemons stopped; logs and outputs in $STATE"' EXIT

# munge with its own key and socket.
head -c 1024 /dev/urandom >"$STATE/munge.key"
chmod 400 "$STATE/munge.key"
munged --force --socket="$STATE/munge.socket" --key-file="$STATE/munge.key" --pid-file="$STATE/munged.pid" \
  --log-file="$STATE/munged.log" --seed-file="$STATE/munged.seed"

NODE=$(hostname -s)
MEMORY=$(awk '/MemTotal/ { print int($2 / 1024) - 1024 }' /proc/meminfo)
export SLURM_CONF="$STATE/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=vitpeftsmoke
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$STATE/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
PlugStackConfig=/dev/null
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=20
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEMORY State=UNKNOWN
PartitionName=smoke Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c
slurmd
for _ in $(seq 60); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(sinfo -h -o %t 2>/dev/null)" = idle ] || fail "the node did not come up: $(sinfo 2>&1); see $STATE/slurmctld.log and slurmd.log"
say "single-node Slurm up ($(slurmctld -V), node $NODE, $(nproc) CPUs)"

started=$(date +%s)
WORK="$STATE/work"
PIPELINE="$REPO/examples/tiny-grid.json"
say "unsharded reference run"
$VITPEFT run "$PIPELINE" --out "$WORK/plain" >"$WORK/plain.log" 2>&1 || fail "the unsharded run failed: $(tail -5 "$WORK/plain.log")"

say "submitting the example array and its merge job"
SUBMITTED=$(cd "$WORK" && VITPEFT_BIN="$VITPEFT" "$REPO/examples/slurm/submit.sh" "$PIPELINE" "$WORK/grid")
echo "$SUBMITTED"
ARRAY=$(sed -n 's/.* in array job \([0-9]*\) .*/\1/p' <<<"$SUBMITTED")
MERGE=$(sed -n 's/.*; merge job \([0-9]*\) .*/\1/p' <<<"$SUBMITTED")
[ -n "$ARRAY" ] && [ -n "$MERGE" ] || fail "could not read the job IDs from: $SUBMITTED"
state() { scontrol show job "$1" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1; }

# Preempt the middle task once it has trained a step: it must come back and resume its own shard.
SHARD2="$WORK/grid/tiny-grid-shard2of3"
steps_done() { if [ -f "$SHARD2/metrics.csv" ]; then echo $(($(wc -l <"$SHARD2/metrics.csv") - 1)); else echo 0; fi; }
for _ in $(seq 1200); do
  [ "$(steps_done)" -ge 1 ] && break
  sleep 0.1
done
if [ "$(state "${ARRAY}_1")" = RUNNING ]; then
  scontrol requeue "${ARRAY}_1"
  # Slurm holds a requeued job back for a while before it may start again; not needed here.
  for _ in $(seq 100); do [ "$(state "${ARRAY}_1")" = PENDING ] && break; sleep 0.2; done
  scontrol update JobId="${ARRAY}_1" StartTime=now || true
  say "requeued task ${ARRAY}_1 after $(steps_done) step(s) of its shard"
  REQUEUED=1
else
  say "task ${ARRAY}_1 finished before it could be requeued; skipping the requeue check"
  REQUEUED=0
fi

for _ in $(seq 600); do
  case "$(state "$MERGE")" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;;
  esac
  sleep 1
done
say "merge job $MERGE: $(state "$MERGE") after $(($(date +%s) - started)) s"
for log in "$WORK/grid"/vitpeft-*.out; do echo "----- $(basename "$log")"; cat "$log"; done
[ "$(state "$MERGE")" = COMPLETED ] || fail "the merge job did not complete"
if [ "$REQUEUED" = 1 ]; then
  grep -q "restart 1" "$WORK/grid/vitpeft-grid-${ARRAY}_1.out" || fail "task ${ARRAY}_1 did not run again after the requeue"
  grep -q "resuming run 'tiny-grid' in $SHARD2" "$WORK/grid/vitpeft-grid-${ARRAY}_1.out" || fail "task ${ARRAY}_1 did not resume its shard"
  say "task ${ARRAY}_1 after the requeue: $(grep -o 'resuming at step [0-9]*' "$WORK/grid/vitpeft-grid-${ARRAY}_1.out" || echo 'its job started again (no checkpoint had been written)')"
fi
echo "----- merged results.csv ($WORK/grid/tiny-grid)"
cat "$WORK/grid/tiny-grid/results.csv"
cmp "$WORK/grid/tiny-grid/results.csv" "$WORK/plain/tiny-grid/results.csv" || fail "the merged results.csv differs from the unsharded run's"
say "OK: merged results.csv equals the unsharded run's byte for byte ($(($(date +%s) - started)) s)"
