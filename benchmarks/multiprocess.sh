#!/usr/bin/env bash
# Wall time of a multi-model study (W&P seeds + adversary sweep) on 1 process and on N
# processes joined by jax.distributed on this machine (python -m jaxattn.runtime.launch), on copies of one
# base run; prints both times and whether the summaries agree.
#   benchmarks/multiprocess.sh [N] [SEEDS]        (defaults 2 and 4)
set -euo pipefail
N=${1:-2}; SEEDS=${2:-4}
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
SET=(--set data.name=file --set "data.train_file=$ROOT/examples/data/reviews.csv"
     --set train.epochs=2 --set model.embed_dim=16 --set model.hidden_size=8 --set train.batch_size=16)
"$PY" -m jaxattn.cli train "${SET[@]}" --out "$WORK/one" --quiet
cp -r "$WORK/one" "$WORK/many"
STUDY=(wp --only seeds,adversary --seeds "$SEEDS" --quiet)
t0=$(date +%s.%N)
"$PY" -m jaxattn.cli "${STUDY[@]}" --run "$WORK/one" > /dev/null
t1=$(date +%s.%N)
"$PY" -m jaxattn.runtime.launch -n "$N" -- "${STUDY[@]}" --run "$WORK/many" > /dev/null
t2=$(date +%s.%N)
"$PY" - "$WORK" "$t0" "$t1" "$t2" "$N" <<'PYEOF'
import json, sys
work, t0, t1, t2, n = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5]
a = json.load(open(f"{work}/one/wp/summary.json"))
b = json.load(open(f"{work}/many/wp/summary.json"))
print(f"1 process: {t1 - t0:.1f} s (seeds {a['seeds']['mode']}); {n} processes: {t2 - t1:.1f} s "
      f"(seeds {b['seeds']['mode']}); ratio {(t1 - t0) / (t2 - t1):.2f}")
print("seed F1 1 process:", [round(x, 4) for x in a["seeds"]["f1"]])
print(f"seed F1 {n} processes:", [round(x, 4) for x in b["seeds"]["f1"]])
print("adversary F1:", [round(r["f1"], 4) for r in a["adversary"]["sweep"]], "vs",
      [round(r["f1"], 4) for r in b["adversary"]["sweep"]])
PYEOF
rm -rf "$WORK"
