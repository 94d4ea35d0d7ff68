#!/usr/bin/env bash
# The GPU measurements of the ensemble trainer, in one call (a lent GPU's time is short):
#
#     bash benchmarks/gpu.sh [N]
#
# 1. benchmarks/ensemble_agreement.py --device cuda: each member of a mixed ensemble against the
#    same member trained alone, on the GPU (record: benchmarks/records/agreement-gpu-N.json);
# 2. benchmarks/ensemble.py --device cuda: the 40-member grid as one ensemble, one member at a
#    time and in the plain loop (record: benchmarks/records/ensemble-gpu-N.json);
# 3. if time is left (SECONDS_LEFT, default 420 s in all), the same with 25 seeds per loss (200
#    members, 2 repeats, no plain loop): how the speed-up grows with the ensemble
#    (record: benchmarks/records/scaling-gpu-N.json).
# PARTS (default "agreement ensemble scaling") picks the parts; SCALING_PAIRS (default 2) the
# 200-member run's repeats (one repeat takes about 90 s on an H200). N defaults to 1. DEVICE (default cuda) picks the device. Uses PYTHON (default python3) with torch, numpy, scipy and tqdm installed and
# gan_lib importable from this checkout. With $OUT set, the records and logs are also copied there.
set -u -o pipefail
n=${1:-1}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
budget=${SECONDS_LEFT:-420}
parts=" ${PARTS:-agreement ensemble scaling} "
scaling_pairs=${SCALING_PAIRS:-2}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
rec=benchmarks/records
logs=${OUT:-$rec}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
$py -c "import torch, numpy, scipy, tqdm; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" || exit 1
status=0
if [[ $parts == *" agreement "* ]]; then
    timeout 120 $py benchmarks/ensemble_agreement.py --device "$device" --out $rec/agreement-gpu-$n.json 2>&1 | tee "$logs/agreement-gpu-$n.log" || status=1
fi
if [[ $parts == *" ensemble "* ]]; then
    timeout $((budget - SECONDS - 30)) $py benchmarks/ensemble.py --device "$device" --out $rec/ensemble-gpu-$n.json 2>&1 | tee "$logs/ensemble-gpu-$n.log" || status=1
fi
left=$((budget - SECONDS))
if [[ $parts != *" scaling "* ]]; then
    :
elif [ "$left" -gt 90 ]; then
    timeout $((left - 10)) $py benchmarks/ensemble.py --device "$device" --seeds 25 --pairs "$scaling_pairs" --no-plain --out $rec/scaling-gpu-$n.json 2>&1 | tee "$logs/scaling-gpu-$n.log" || status=1
else
    echo "gpu.sh: ${left} s left, the 200-member run is skipped"
fi
if [ -n "${OUT:-}" ]; then
    cp $rec/*-gpu-$n.json "$OUT"/ 2>/dev/null || true
fi
echo "gpu.sh: done in ${SECONDS} s, status $status"
exit $status
