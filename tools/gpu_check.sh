#!/usr/bin/env bash
# The --device cuda checks and figures of issue 19, on a machine with an NVIDIA GPU:
#   OUT=folder bash tools/gpu_check.sh
# Wheels in .whl/ (Keras and what it needs beyond the machine's image) are installed first.
# Runs, each under its own time limit: the TF32 probe; the default command cold (empty
# cache folder) and warm; densenet121 96 px batch 4 without referee on two frameworks and
# on four, cold and warm (ONLY=pair: a user's own pair from examples/own_pair.py instead, on
# the GPU and on the CPU; ONLY=extra: the default command, then the tests' stochastic-depth
# pair on both devices and a step that diverges with finite numbers). Logs and reports go to $OUT/gpu-check.tar.gz; a table ends the output.
# Where nvidia-smi is there, each command's GPU memory in use is sampled every 0.2 s and its
# largest reading (all processes on the GPU, the tool's workers included) is in the table.
set -u
OUT=${OUT:-build/gpu-check}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-densenet121}  # tiny_cnn tries the script out on a CPU
LOGS=$(mktemp -d)
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
mkdir -p "$OUT"
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$LOGS/summary.txt"

step() {  # step NAME SECONDS COMMAND...: run it, keep its log, add a line to the summary
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$LOGS/commands.txt"
    local sampler= gpu_peak=-
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 \
            >"$LOGS/$name.gpu-mib" 2>/dev/null &
        sampler=$!
    fi
    local started=$EPOCHREALTIME
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$? ended=$EPOCHREALTIME
    local seconds=$(awk "BEGIN { print $ended - $started }")
    if [ -n "$sampler" ]; then
        kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
        gpu_peak="$(sort -n "$LOGS/$name.gpu-mib" | tail -n 1) MiB"
    fi
    printf '%-14s rc=%-3s %7.1f s  gpu %-10s %s\n' "$name" "$rc" "$seconds" "$gpu_peak" \
        "$(grep -E 'runs, checks|runs skipped|^error|Error' "$LOGS/$name.log" | tail -n 2 | tr '\n' ' ' | cut -c1-150)" \
        | tee -a "$SUMMARY"
    tail -n 4 "$LOGS/$name.log"
    tar -czf "$OUT/gpu-check.tar.gz" -C "$LOGS" .
}

{ nvidia-smi -L; nvidia-smi --query-gpu=memory.used,memory.total --format=csv; nproc; KERAS_BACKEND=torch $PY -c "import sys, torch, torchvision, keras, jax, onnxruntime as o
print(sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__,
      'keras', keras.__version__, 'jax', jax.__version__, jax.devices(), 'onnxruntime', o.__version__,
      o.get_available_providers())"; } 2>&1 | tee "$LOGS/machine.txt"

PAIR=(--pytorch examples/own_pair.py:seeded_small_resnet --keras examples/own_pair.py:small_resnet_keras
      --port-weights pytorch-to-keras --input-shape 3,16,16 --batch-size 4 --cache-dir "$CACHE")
if [ "${ONLY:-}" = pair ]; then  # a user's own pair (examples/own_pair.py) on both devices
    step pair-gpu 90 $PY scripts/compare.py "${PAIR[@]}" --device "$DEVICE" --json "$LOGS/pair-gpu.json"
    step pair-cpu 90 $PY scripts/compare.py "${PAIR[@]}" --device cpu --json "$LOGS/pair-cpu.json"
    echo; cat "$SUMMARY"
    exit 0
fi
if [ "${ONLY:-}" = extra ]; then  # the default command, then paths added on 2026-11-30
    step default-cold 150 $PY scripts/compare.py "$MODEL" --device "$DEVICE" --cache-dir "$CACHE" --json "$LOGS/default-cold.json"
    step default-warm 90 $PY scripts/compare.py "$MODEL" --device "$DEVICE" --cache-dir "$CACHE" --json "$LOGS/default-warm.json"
    DEPTH=(--pytorch tests/stochastic_depth_models.py:ResidualDepth
           --keras tests/stochastic_depth_models.py:keras_residual_depth --port-weights pytorch-to-keras
           --input-shape 3,8,8 --batch-size 4 --labels 0,1,2,0 --cache-dir "$CACHE")
    step depth-gpu 90 $PY scripts/compare.py "${DEPTH[@]}" --device "$DEVICE" --json "$LOGS/depth-gpu.json"
    step depth-off-gpu 90 $PY scripts/compare.py "${DEPTH[@]}" --dropout off --device "$DEVICE" --json "$LOGS/depth-off-gpu.json"
    step depth-cpu 90 $PY scripts/compare.py "${DEPTH[@]}" --device cpu --json "$LOGS/depth-cpu.json"
    step exploding 90 $PY scripts/compare.py tiny_cnn --lr 1000 --image-size 16 --batch-size 4 --no-onnx --device "$DEVICE" --cache-dir "$CACHE" --json "$LOGS/exploding.json"
    echo; cat "$SUMMARY"
    exit 0
fi
FOUR=pytorch,keras-torch,keras-tensorflow,keras-jax
SMALL=(--image-size 96 --batch-size 4 --no-onnx --device "$DEVICE" --cache-dir "$CACHE")
step tf32-probe 60 $PY tools/tf32_probe.py
step default-cold 150 $PY scripts/compare.py "$MODEL" --device "$DEVICE" --cache-dir "$CACHE" --json "$LOGS/default-cold.json"
step default-warm 90 $PY scripts/compare.py "$MODEL" --device "$DEVICE" --cache-dir "$CACHE" --json "$LOGS/default-warm.json"
step two 60 $PY scripts/compare.py "$MODEL" "${SMALL[@]}" --frameworks pytorch,keras-torch --json "$LOGS/two.json"
step four-cold 180 $PY scripts/compare.py "$MODEL" "${SMALL[@]}" --frameworks $FOUR --json "$LOGS/four-cold.json"
step four-warm 120 $PY scripts/compare.py "$MODEL" "${SMALL[@]}" --frameworks $FOUR --json "$LOGS/four-warm.json"
step two-again 60 $PY scripts/compare.py "$MODEL" "${SMALL[@]}" --frameworks pytorch,keras-torch --json "$LOGS/two-again.json"
echo; cat "$SUMMARY"
