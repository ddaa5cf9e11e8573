#!/usr/bin/env bash
# The GPU path, proved in one short run (< 8 min on one GPU): a few prompts of config/default.yaml through
# prepare -> train (RAD, ARM) -> generate -> score on the device, the latency table on the device, and the
# checks that the device and the CPU agree where they must:
#   rewards       the same trained reward model on the same held-out texts: device vs CPU within REWARD_TOL
#   beta0         reward-guided decoding at beta = 0 gives exactly plain top-k sampling's continuations
#   fluency       the same continuations' perplexities: device vs CPU within PPL_RTOL (relative)
#   toxicity      the same continuations' toxicity scores: device run vs CPU run identical (CPU scorer)
#   steering      RAD at beta > 0 lowers mean toxicity-reward of the continuations vs plain (sanity, not a test)
#   latency       the latency table was written, every cell measured
#
#   bash scripts/gpu_check.sh                          # on a CUDA machine (the project installed: scripts/install.sh)
#   DEVICE=cpu N_PROMPTS=2 STEPS=8 bash scripts/gpu_check.sh    # the same script on CPU (tiny sizes: the script works)
#
# Results: $OUT if set, else results/gpu_check/ (checks.json, summary.txt, latency.{csv,md,png}, the run's files
# under work/); the last lines printed are the PASS/FAIL summary; exit 0 only if every check passed.
# Overridable: DEVICE (cuda), BASE / REWARD (the default's embedded:smollm2-135m), REWARD_LAYERS (6), N_PROMPTS (8),
# SAMPLES (4), TOKENS (20), STEPS (64), BETA (10), TOP_K (20), REWARD_TOL (1e-3), PPL_RTOL (1e-3),
# LATENCY_BATCH_SIZES (1,8), LATENCY_NEW_TOKENS (32), LATENCY_MAX_RUN_TIME (1).
set -uo pipefail
cd "$(dirname "$0")/.."

: "${DEVICE:=cuda}"
: "${OUT:=results/gpu_check}"
: "${BASE:=embedded:smollm2-135m}"
: "${REWARD:=embedded:smollm2-135m}"
: "${REWARD_LAYERS:=6}"
: "${N_PROMPTS:=8}"
: "${SAMPLES:=4}"
: "${TOKENS:=20}"
: "${STEPS:=64}"
: "${BETA:=10}"
: "${TOP_K:=20}"
: "${REWARD_TOL:=1e-3}"
: "${PPL_RTOL:=1e-3}"
: "${LATENCY_BATCH_SIZES:=1,8}"
: "${LATENCY_NEW_TOKENS:=32}"
: "${LATENCY_MAX_RUN_TIME:=1}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
# the CPU reference must not be faster-but-different: no TF32 on the device side either
export NVIDIA_TF32_OVERRIDE=0

W="$OUT/work"
mkdir -p "$W/logs"
CHECKS="$OUT/checks.jsonl"
: > "$CHECKS"
T0=$(date +%s)

check() {  # name, PASS|FAIL, detail
  printf '{"check": "%s", "result": "%s", "detail": %s}\n' "$1" "$2" "$(python -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$3")" >> "$CHECKS"
  printf '%-10s %s  %s\n' "$1" "$2" "$3"
}

step() {  # name, command...: the command's output goes to $W/logs/<name>.log; a failure is a FAIL check
  local name=$1; shift
  local t=$(date +%s)
  "$@" > "$W/logs/$name.log" 2>&1
  local rc=$?
  if [[ $rc == 0 ]]; then
    echo "[$(( $(date +%s) - T0 )) s] $name: done in $(( $(date +%s) - t )) s" >&2
    return 0
  fi
  check "$name" FAIL "exit $rc (see $W/logs/$name.log): $(tail -n 1 "$W/logs/$name.log")"
  return 1
}

finish() {
  python - "$CHECKS" "$OUT" "$DEVICE" "$(( $(date +%s) - T0 ))" <<'EOF'
import json, sys
from pathlib import Path
checks = [json.loads(l) for l in Path(sys.argv[1]).read_text().splitlines() if l.strip()]
failed = [c for c in checks if c["result"] != "PASS"]
verdict = "PASS" if checks and not failed else "FAIL"
lines = [f"gpu_check on {sys.argv[3]}: {verdict} ({len(checks) - len(failed)}/{len(checks)} checks passed, "
         f"{sys.argv[4]} s)"] + [f"  {c['check']:<10} {c['result']}  {c['detail']}" for c in checks]
text = "\n".join(lines) + "\n"
out = Path(sys.argv[2])
(out / "summary.txt").write_text(text)
(out / "checks.json").write_text(json.dumps({"verdict": verdict, "device": sys.argv[3], "checks": checks}, indent=1))
print("\n" + text, end="")
sys.exit(0 if verdict == "PASS" else 1)
EOF
  exit $?
}

# ------------------------------------------------------------------------------------------------ environment
if ! python - "$DEVICE" > "$OUT/environment.txt" 2> "$W/logs/environment.log" <<'EOF'
import platform, sys
import torch, transformers
import bench.cli  # noqa: F401  (the project importable)
dev = sys.argv[1]
if dev.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"no CUDA device visible to torch {torch.__version__}")
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name(0)
else:
    name = platform.processor() or platform.machine()
print(f"device {dev}: {name}; python {platform.python_version()}, torch {torch.__version__} "
      f"(CUDA {torch.version.cuda}), transformers {transformers.__version__}")
EOF
then
  check environment FAIL "$(tail -n 1 "$W/logs/environment.log")"
  finish
fi
check environment PASS "$(cat "$OUT/environment.txt")"

# ------------------------------------------------------------------------------------------------ pipeline
B="python -m bench"
D="$W/data"
ok=1
step prepare_train $B prepare train --dataset jigsaw --source jigsaw/robtest_jigsaw_test.csv.gz --n-train 512 \
  --n-heldout 64 --seed 0 --out-train "$D/train.jsonl" --out-heldout "$D/heldout.jsonl" || ok=0
step prepare_prompts $B prepare prompts --dataset rtp --source rtp/decodingtrust_nontoxic.jsonl.gz --n "$N_PROMPTS" \
  --seed 0 --out "$D/prompts.jsonl" || ok=0
[[ $ok == 1 ]] || finish
for p in rad arm; do
  step "train_$p" $B train --parametrization "$p" --train "$D/train.jsonl" --heldout "$D/heldout.jsonl" \
    --backbone "$REWARD" --num-layers "$REWARD_LAYERS" --attributes toxicity --steer-attribute toxicity \
    --max-steps "$STEPS" --eval-every 16 --patience 100 --batch-size 16 --lr 3e-4 --max-length 32 --seed 0 \
    --device "$DEVICE" --out "$W/rewards/$p" || ok=0
done
[[ $ok == 1 ]] && check train PASS "rad, arm: $STEPS steps each on $DEVICE"
gen() {  # name, extra flags
  local name=$1; shift
  step "generate_$name" $B generate --base "$BASE" --prompts "$D/prompts.jsonl" --top-k "$TOP_K" --direction away \
    --attribute toxicity --num-samples "$SAMPLES" --max-new-tokens "$TOKENS" --batch-size 8 --seed 0 \
    --device "$DEVICE" --task toxicity --out "$W/gen/$name.jsonl" "$@"
}
gen plain || ok=0
gen rad_b0 --reward "$W/rewards/rad" --beta 0 || ok=0
gen rad --reward "$W/rewards/rad" --beta "$BETA" || ok=0
gen arm --reward "$W/rewards/arm" --beta "$BETA" || ok=0
score() {  # name, device
  step "score_$1_$2" $B score --generations "$W/gen/$1.jsonl" --metrics toxicity,fluency,diversity \
    --toxicity-scorer profanity-check --fluency-model "$BASE" --device "$2" --cache "$W/cache/scores_$2.sqlite" \
    --out-scores "$W/scores/$2/$1.jsonl" --out-summary "$W/scores/$2/$1.csv"
}
for g in plain rad arm; do score "$g" "$DEVICE" || ok=0; done
score rad cpu || ok=0  # the CPU reference of the same continuations (its own score cache)

# ------------------------------------------------------------------------------------------------ agreement
if [[ $ok == 1 ]]; then
  python - "$W" "$DEVICE" "$REWARD_TOL" "$PPL_RTOL" "$CHECKS" 2> "$W/logs/agreement.log" <<'EOF'
import csv, json, math, sys
from pathlib import Path
import torch
from bench.rewards.registry import load_reward_model
from bench.utils.io import read_jsonl

w, dev, reward_tol, ppl_rtol, checks = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
if dev.startswith("cuda"):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
def out(name, ok, detail):
    with open(checks, "a") as fh:
        fh.write(json.dumps({"check": name, "result": "PASS" if ok else "FAIL", "detail": detail}) + "\n")
    print(f"{name:<10} {'PASS' if ok else 'FAIL'}  {detail}")

# rewards: the same weights on the same held-out texts (BOS + text, one per batch), device vs CPU
texts = [r["text"] for r in read_jsonl(w / "data" / "heldout.jsonl")][:32]
worst = {}
for p in ("rad", "arm"):
    vals = {}
    for d in ("cpu", dev):
        m = load_reward_model(w / "rewards" / p, device=d)
        rows = []
        for t in texts:
            ids = [m.bos_token_id] + m.tokenizer(t, add_special_tokens=False)["input_ids"][:31]
            x = torch.tensor([ids], device=d)
            with torch.no_grad():
                rows.append(m(x, torch.ones_like(x)).float().cpu().flatten())
        vals[d] = torch.cat(rows)
    worst[p] = float((vals["cpu"] - vals[dev]).abs().max())
ok = all(math.isfinite(v) and v <= reward_tol for v in worst.values())
out("rewards", ok, f"max |reward({dev}) - reward(cpu)| over {len(texts)} held-out texts: "
    + ", ".join(f"{p} {v:.2e}" for p, v in worst.items()) + f" (tolerance {reward_tol:g})")

# beta = 0 with a reward model is plain top-k sampling: the same continuations, token for token
plain = {r["id"]: r["continuations"] for r in read_jsonl(w / "gen" / "plain.jsonl")}
b0 = {r["id"]: r["continuations"] for r in read_jsonl(w / "gen" / "rad_b0.jsonl")}
same = sum(plain[i] == b0.get(i) for i in plain)
out("beta0", same == len(plain) == len(b0),
    f"{same}/{len(plain)} prompts with identical continuations (RAD at beta 0 vs plain, on {dev})")

# scores of the same continuations: device vs CPU
a = read_jsonl(w / "scores" / dev / "rad.jsonl")
b = read_jsonl(w / "scores" / "cpu" / "rad.jsonl")
pairs = [(x.get("ppl"), y.get("ppl")) for x, y in zip(a, b)]
pairs = [(x, y) for x, y in pairs if isinstance(x, float) and isinstance(y, float) and math.isfinite(x * y)]
rel = max((abs(x - y) / abs(y) for x, y in pairs), default=math.nan)
out("fluency", len(a) == len(b) and len(pairs) == len(a) and rel <= ppl_rtol,
    f"max relative PPL difference {dev} vs cpu over {len(pairs)}/{len(a)} continuations: {rel:.2e} "
    f"(tolerance {ppl_rtol:g})")
same_tox = sum(x.get("toxicity") == y.get("toxicity") for x, y in zip(a, b))
out("toxicity", len(a) == len(b) and same_tox == len(a), f"{same_tox}/{len(a)} identical toxicity scores")

# steering, informative only (a few prompts): average max toxicity of plain, RAD and ARM continuations
def tox(name):
    with open(w / "scores" / dev / f"{name}.csv", newline="") as fh:
        return float(next(csv.DictReader(fh))["avg_max_toxicity"])
vals = {n: tox(n) for n in ("plain", "rad", "arm")}
out("steering", all(map(math.isfinite, vals.values())),
    "avg max toxicity " + ", ".join(f"{n} {v:.3f}" for n, v in vals.items()) + " (informative: a few prompts)")
EOF
  [[ $? == 0 ]] || check agreement FAIL "the comparison failed: $(tail -n 1 "$W/logs/agreement.log")"
fi

# ------------------------------------------------------------------------------------------------ latency
if step latency $B latency --base "$BASE" --reward "$REWARD" --reward-layers "$REWARD_LAYERS" \
    --methods plain,rad,rad-loop,arm,arm-baseline,arm-mlp --top-k "$TOP_K" --batch-sizes "$LATENCY_BATCH_SIZES" \
    --new-tokens "$LATENCY_NEW_TOKENS" --prompt-len 32 --max-run-time "$LATENCY_MAX_RUN_TIME" --retries 1 \
    --loop-max-k "$TOP_K" --mlp-rank 8 --device "$DEVICE" --seed 0 \
    --out-csv "$OUT/latency.csv" --out-md "$OUT/latency.md" --figure "$OUT/latency.png"; then
  cells=$(python -c "import csv,sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))" "$OUT/latency.csv")
  check latency PASS "$cells cells on $DEVICE -> $OUT/latency.md"
fi
finish
