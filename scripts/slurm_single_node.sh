#!/usr/bin/env bash
# Prove the cluster path on a real scheduler: start a one-node Slurm cluster on this machine
# and run the smoke suite through workflows/profiles/slurm (every job an sbatch job).
#
#   sudo -E scripts/slurm_single_node.sh                 # reports/toy.html at the smoke scale
#   sudo -E scripts/slurm_single_node.sh reports/mujoco.html
#   KEEP=1 ...  leaves the daemons running afterwards (stop: scontrol shutdown; kill munged)
#
# Needs root (apt-get, daemons) and the project's Python environment active (the one with
# odtbench and snakemake); installs Debian's slurmctld/slurmd/slurm-client/munge and the
# Snakemake SLURM executor plugin when they are missing. The workflow runs in a scratch copy
# ($WORK, default $TMPDIR/odtbench-slurm) so the checkout's results/ are never touched.
# Single node: no slurmdbd (accounting), so job states come from squeue (MinJobAge 1 h) and
# jobs run without an account. docs/cluster.md explains every setting below.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-${TMPDIR:-$(dirname "$(mktemp -u)")}/odtbench-slurm}
SCALE=${SCALE:-smoke}
KEEP=${KEEP:-0}
PYTHON=${PYTHON:-python3}
CONF_DIR=/etc/slurm
MARK="# written by odtbench scripts/slurm_single_node.sh"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(reports/toy.html)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'slurm_single_node: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get and the Slurm daemons need it): sudo -E $0"
command -v snakemake >/dev/null || die "snakemake not on PATH; activate the project's venv first"

say "packages"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge \
    || { apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge; }
fi
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || "$PYTHON" -m pip install --quiet "snakemake-executor-plugin-slurm>=2,<3"
# (not `sbatch --version`: without a slurm.conf yet it fails looking for a config server)
dpkg-query -W -f='${Package} ${Version}\n' slurmctld slurmd slurm-client munge
"$PYTHON" -m pip show snakemake-executor-plugin-slurm | sed -n 's/^Version: /snakemake-executor-plugin-slurm /p'

say "munge"
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  sleep 1
fi
munge -n | unmunge | grep -q 'STATUS: *Success' || die "munged does not answer (see /var/log/munge/)"

say "slurm.conf"
HOST=$(hostname -s)
CPUS=$(nproc)
# leave the OS 10 % of the memory; Slurm then enforces each job's --mem against the rest
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
  die "$CONF_DIR/slurm.conf exists and was not written by this script; move it away first"
fi
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=odtbench
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups in a container or VM without systemd: track processes by parent id
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
# cores and memory are consumable: jobs pack by their --cpus-per-task and --mem
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# finished jobs stay visible to squeue for an hour (the plugin's status queries)
MinJobAge=3600
ReturnToService=2
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
cat "$CONF_DIR/slurm.conf"

say "daemons"
scontrol ping >/dev/null 2>&1 && scontrol shutdown >/dev/null 2>&1 && sleep 2 || true
slurmctld -c        # -c: start from a clean state
slurmd
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  case "$state" in idle*|mixed*|allocated*) break ;; esac
  sleep 1
done
sinfo
case "$(sinfo -h -n "$HOST" -o %T)" in idle*|mixed*|allocated*) ;;
  *) die "node $HOST is not up: $(sinfo -h -n "$HOST" -o '%T %E'); see /var/log/slurm/" ;; esac
job=$(sbatch --parsable --wrap 'hostname' -o /dev/null)
for _ in $(seq 60); do
  [ "$(squeue -h -j "$job" --states=all -o %T)" = COMPLETED ] && break
  sleep 1
done
[ "$(squeue -h -j "$job" --states=all -o %T)" = COMPLETED ] || die "test job $job did not complete"
echo "test job $job completed"

say "smoke suite through workflows/profiles/slurm in $WORK"
mkdir -p "$WORK"
rm -rf "$WORK/workflows" && cp -r "$REPO/Snakefile" "$REPO/workflows" "$WORK/"
cd "$WORK"
start=$SECONDS
snakemake --profile "$REPO/workflows/profiles/slurm" --slurm-no-account \
  --slurm-status-command squeue "${TARGETS[@]}" --config scale="$SCALE"
echo "workflow wall time: $((SECONDS - start)) s"

say "what Slurm ran"
for t in "${TARGETS[@]}"; do test -s "$t" || die "target $t was not made"; done
squeue --states=all -o '%.8i %.10T %.9M %.4C %.8m %.60j' | tee "$WORK/slurm_jobs.txt"
n=$(($(wc -l < "$WORK/slurm_jobs.txt") - 1))
echo "$n sbatch jobs (1 test job + the workflow's); logs: $WORK/.snakemake/slurm_logs/"
ls "$WORK/.snakemake/slurm_logs"/rule_* -d 2>/dev/null | sed "s|$WORK/||"

if [ "$KEEP" != 1 ]; then
  say "stopping the daemons (KEEP=1 keeps them)"
  scontrol shutdown || true
  [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" || true
fi
echo "OK: ${TARGETS[*]} built through Slurm"
