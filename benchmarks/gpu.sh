#!/usr/bin/env bash
# The GPU measurements of the ensemble trainer, in one call (a lent GPU's time is short):
#
#     bash benchmarks/gpu.sh [N]
#
# 1. agreement: benchmarks/ensemble_agreement.py --device cuda: each member of a mixed ensemble
#    against the same member trained alone, on the GPU (record: benchmarks/records/agreement-gpu-N.json);
# 2. ensemble: benchmarks/ensemble.py --device cuda: the 40-member grid as one ensemble, one member
#    at a time and in the plain loop (record: benchmarks/records/ensemble-gpu-N.json; about 4 min on
#    an H200);
# 3. scaling: the same with 25 seeds per loss (200 members, SCALING_PAIRS repeats, default 1, no
#    plain loop): how the speed-up grows with the ensemble (record:
#    benchmarks/records/scaling-gpu-N.json; about 100 s per repeat on an H200), run only if the time
#    left allows 110 s per repeat.
# SECONDS_LEFT (default 420) is the time the whole script may take, in seconds; each part gets what
# is left (a part with under a minute left is skipped). PARTS (default "agreement ensemble
# scaling") picks the parts, DEVICE (default cuda) the device, PYTHON (default python3) the Python
# that has torch, numpy, scipy and tqdm; gan_lib is imported from this checkout. N defaults to 1.
# COMPILE_LOSSES=1 gives every part --compile-losses (EnsembleConfig(compile_losses=True): the
# members' losses fused by torch.compile; the ensemble part then takes about a minute more to compile).
# An existing record for N is never overwritten (the script refuses). The terminal output goes to
# benchmarks/records/logs/*-gpu-N.log, and with $OUT set (the device
# tool) the records and logs written by this call are also copied there. Exit status: 0 if every
# part ran and passed, 1 otherwise.
set -u -o pipefail
n=${1:-1}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
budget=${SECONDS_LEFT:-420}
parts=${PARTS:-agreement ensemble scaling}
scaling_pairs=${SCALING_PAIRS:-1}
compile_flag=()
case ${COMPILE_LOSSES:-0} in
    0) ;;
    1) compile_flag=(--compile-losses) ;;
    *) echo "gpu.sh: COMPILE_LOSSES=${COMPILE_LOSSES} must be 0 or 1" >&2
       exit 2 ;;
esac
for v in "$n" "$budget" "$scaling_pairs"; do
    if ! [[ $v =~ ^[0-9]+$ ]] || [ "$v" -lt 1 ]; then
        echo "gpu.sh: N, SECONDS_LEFT and SCALING_PAIRS must be whole numbers >= 1 (got N=$n SECONDS_LEFT=$budget SCALING_PAIRS=$scaling_pairs)" >&2
        exit 2
    fi
done
for part in $parts; do
    case $part in
        agreement|ensemble|scaling) ;;
        *) echo "gpu.sh: PARTS=\"$parts\": unknown part '$part'; allowed: agreement ensemble scaling (space-separated)" >&2
           exit 2 ;;
    esac
done
want() { [[ " $parts " == *" $1 "* ]]; }
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
rec=benchmarks/records
logs=$rec/logs
mkdir -p "$logs"
written=()
status=0

# run NAME MIN_SECONDS COMMAND...: the command under the time left, its output logged; skipped with
# a message when less than MIN_SECONDS are left
run() {
    local name=$1 need=$2
    shift 2
    local left=$((budget - SECONDS))
    if [ "$left" -lt "$need" ]; then
        echo "gpu.sh: $name skipped: ${left} s left, it needs ${need} s"
        status=1
        return
    fi
    timeout "$left" "$@" 2>&1 | tee "$logs/$name-gpu-$n.log"
    local rc=$?
    written+=("$logs/$name-gpu-$n.log")
    [ -f "$rec/$name-gpu-$n.json" ] && written+=("$rec/$name-gpu-$n.json")
    if [ "$rc" -ne 0 ]; then
        echo "gpu.sh: $name exited with status $rc"
        status=1
    fi
}

for part in $parts; do  # never overwrite a record: an earlier call's would pass for this one's
    if [ -e "$rec/$part-gpu-$n.json" ]; then
        echo "gpu.sh: $rec/$part-gpu-$n.json exists; give another N (records are kept, not overwritten)" >&2
        exit 2
    fi
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
$py -c "import platform, torch, numpy, scipy, tqdm; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" || exit 1
want agreement && run agreement 60 $py benchmarks/ensemble_agreement.py --device "$device" "${compile_flag[@]}" --out "$rec/agreement-gpu-$n.json"
want ensemble && run ensemble 60 $py benchmarks/ensemble.py --device "$device" "${compile_flag[@]}" --out "$rec/ensemble-gpu-$n.json"
want scaling && run scaling $((110 * scaling_pairs)) $py benchmarks/ensemble.py --device "$device" "${compile_flag[@]}" --seeds 25 \
    --pairs "$scaling_pairs" --no-plain --out "$rec/scaling-gpu-$n.json"
if [ -n "${OUT:-}" ] && [ "${#written[@]}" -gt 0 ]; then
    cp "${written[@]}" "$OUT"/
fi
echo "gpu.sh: done in ${SECONDS} s, status $status"
exit $status
