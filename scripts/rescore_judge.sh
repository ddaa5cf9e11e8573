#!/usr/bin/env bash
# Re-score a finished run's toxicity generations under another judge (scoring only: generations, fluency and
# diversity unchanged, served from the run's score cache), rebuild its tables, and say which conclusions hold:
#
#   bash scripts/rescore_judge.sh runs/study profanity-check runs/study-rescored/profanity-check \
#        results/study/tables --n-boot 1000 --seed 0 --ppl-levels 1.25,1.5,2
#
# RUN_DIR      a run's work_dir (its gen/, scores/ and cache/)
# JUDGE        a toxicity scorer spec (docs/judges.md), e.g. profanity-check or jigsaw-bilstm-tcc
# OUT          folder for the re-scored scores/ and tables/
# TABLES       the run's own tables folder, the reference of `bench conclusions`
# the rest     `bench tables` statistics arguments: the run's config's (statistics.n_boot, seed, ppl_levels)
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash scripts/rescore_judge.sh RUN_DIR JUDGE OUT TABLES [bench tables args]" >&2
  exit 2
fi
RUN=$1 JUDGE=$2 OUT=$3 TABLES=$4
shift 4
PY=${PYTHON:-python}
[ -d "$RUN/scores" ] || { echo "$RUN: no scores/ folder (not a finished run's work_dir)" >&2; exit 2; }
summaries=() scores=()
for summary in "$RUN"/scores/*/*.csv; do
  gtask=$(basename "$(dirname "$summary")") name=$(basename "$summary" .csv)
  case $gtask in
    toxicity*)
      fluency=$($PY -c "import sys, pandas as pd; print(pd.read_csv(sys.argv[1])['fluency_model'].iloc[0])" "$summary")
      mkdir -p "$OUT/scores/$gtask"
      $PY -m bench score --generations "$RUN/gen/$gtask/$name.jsonl" --metrics toxicity,fluency,diversity \
        --toxicity-scorer "$JUDGE" --fluency-model "$fluency" --cache "$RUN/cache/scores.sqlite" \
        --out-scores "$OUT/scores/$gtask/$name.jsonl" --out-summary "$OUT/scores/$gtask/$name.csv" \
        > "$OUT/scores/$gtask/$name.log" 2>&1
      summaries+=("$OUT/scores/$gtask/$name.csv") scores+=("$OUT/scores/$gtask/$name.jsonl") ;;
    *) summaries+=("$summary") scores+=("$RUN/scores/$gtask/$name.jsonl") ;;
  esac
done
$PY -m bench tables --summaries "${summaries[@]}" --scores "${scores[@]}" "$@" --out-dir "$OUT/tables"
$PY -m bench conclusions "$TABLES" "$OUT/tables" --out "$OUT/conclusions.csv"
