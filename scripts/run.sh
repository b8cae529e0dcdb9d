#!/usr/bin/env bash
# The main job: multitask multilingual translation with a Mixture-of-Experts
# model on the CPU, end to end, without network:
#
#   1. installs dependencies (idempotent) and builds the tools;
#   2. builds the English<->X corpus from the machine's gettext catalogs,
#      trains the shared SentencePiece vocabulary and encodes the corpus
#      (cached in build/run/corpus after the first run);
#   3. generates the model (models/mt-demo.json), compiles its training step
#      partitioned over 2 ranks with the experts split between them (ep=2),
#      and prints the partitioning the compiler chose;
#   4. trains it under mpirun (1 rank if MPI cannot start 2) on batches that
#      mix English->X, X->English and denoising rows, for a bounded time,
#      evaluating held-out BLEU along the way (moe-eval);
#   5. prints the final BLEU / chrF2 table next to the copy-the-source
#      baseline, prunes half the experts of every MoE layer (the least used)
#      and evaluates the pruned model, and draws loss, BLEU and expert-load
#      pictures.
#
#   ./scripts/run.sh [--minutes M] [--ranks 1|2] [--config FILE]
#                    [--languages de,fr,...] [--sentences N] [--fresh]
#                    [--buckets L1,L2,...|off]
#
# Defaults: 10 minutes of training and evaluation on 2 ranks, the 8 languages
# of the corpus, 50 test sentences per direction during training and 200 at
# the end (both directions).
# --fresh rebuilds the corpus and restarts training from scratch (otherwise
# a previous run's checkpoint is continued when the model is unchanged).
# --buckets: batches by token count, one plan per length L (source = target
# length L, batch size = the configuration's batch_size * src_len / L, so
# every batch holds the same number of token slots; moe-train
# --bucket-plan), e.g. --buckets 8,12,16,24,32,48; off (the default)
# trains on the configuration's one shape, as the results in README.md
# were measured.
# The synthetic reversal demo with the compiler's IR at every stage is
# scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
ranks=2
config=models/mt-demo.json
languages=fr,uk,sv,es,de,ru,it,pl
sentences=50
final_sentences=200
fresh=0
buckets=off
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --languages) languages=$2; shift 2 ;;
    --sentences) sentences=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --buckets) buckets=$2; shift 2 ;;
    *) echo "run.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
case "$minutes" in
  ''|*[!0-9.]*) echo "run.sh: --minutes expects a number, found '$minutes'" >&2; exit 2 ;;
esac
case "$buckets" in
  off|[0-9]*) ;;
  *) echo "run.sh: --buckets expects lengths like 12,24,48 or off, found '$buckets'" >&2; exit 2 ;;
esac
case "$ranks" in
  1|2) ;;
  *) echo "run.sh: --ranks expects 1 or 2, found '$ranks'" >&2; exit 2 ;;
esac

bash scripts/setup.sh >&2
cmake --preset default >/dev/null
cmake --build --preset default --target moe-opt moe-model-gen moe-train \
  moe-data moe-eval moe-bleu moe-prune -- -j"$(nproc)" >&2
bin=build/bin
py=/usr/bin/python3
out=build/run
mkdir -p "$out"
corpus=$out/corpus
[ "$fresh" = 1 ] && rm -rf "$corpus" "$out/mt"

setting() { "$py" -c "import json,sys; c=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, c))" "$config" "$1"; }
name=$(setting name)
vocab=$(setting vocab_size)
corpus_languages=$(setting "len(set('$languages'.split(',')))")
corpus_languages=$(( corpus_languages > 8 ? corpus_languages : 8 ))

echo "== 1. corpus and tokenizer ($corpus)"
if [ ! -f "$corpus/.complete-$vocab" ]; then
  rm -rf "$corpus"
  "$bin/moe-data" corpus --out "$corpus" --languages "$corpus_languages"
  "$bin/moe-data" spm "$corpus" --vocab "$vocab"
  "$bin/moe-data" encode "$corpus"
  touch "$corpus/.complete-$vocab"
else
  echo "(cached; --fresh rebuilds it)"
fi
column -t "$corpus/languages.tsv" | head -n 20

echo
echo "== 2. model and plans"
work=$out/mt
mkdir -p "$work"
"$bin/moe-model-gen" "$config" -o "$work/$name.mlir"
# Evaluation: the same parameters in one process, with the evaluation
# capacity factor (no token of a held-out sentence dropped for capacity).
"$py" - "$config" "$work/$name-eval.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
moe = c.get("moe")
if moe and "eval_capacity_factor" in moe:
    moe["capacity_factor"] = moe["eval_capacity_factor"]
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
"$bin/moe-model-gen" "$work/$name-eval.json" -o "$work/$name-eval.mlir"
pipeline="lr=0.003 warmup-steps=1000"
# OpenMPI refuses to start as root unless told (containers, CI machines).
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
partition=()
if [ "$ranks" = 2 ]; then
  if mpirun --oversubscribe -np 2 true >/dev/null 2>&1; then
    partition=(--moe-partition="ep=2")
  else
    echo "run.sh: mpirun cannot start 2 processes here; training in 1 process"
    ranks=1
  fi
fi
"$bin/moe-opt" "$work/$name.mlir" --moe-training-pipeline="$pipeline" \
  "${partition[@]}" \
  --moe-emit-plan="output=$work/$name.moeplan seed=1 gpu-kernels=none" \
  -o /dev/null
# Length buckets: the same model at batch x L for every length L, with the
# token slots of the configuration's batch; the shortest is the main plan.
train_plan=$work/$name.moeplan
bucket_args=()
if [ "$buckets" != off ]; then
  first=1
  for length in $(echo "$buckets" | tr , ' '); do
    "$py" - "$config" "$length" "$work/$name-b$length.json" <<'EOF3'
import json, sys
c = json.load(open(sys.argv[1]))
length = int(sys.argv[2])
slots = c["batch_size"] * c["src_len"]
if slots % length:
    sys.exit(f"run.sh: --buckets: {slots} token slots per batch do not divide by the length {length}")
c.update(batch_size=slots // length, src_len=length, tgt_len=length)
json.dump(c, open(sys.argv[3], "w"), indent=1)
EOF3
    "$bin/moe-model-gen" "$work/$name-b$length.json" -o "$work/$name-b$length.mlir"
    "$bin/moe-opt" "$work/$name-b$length.mlir" --moe-training-pipeline="$pipeline" \
      "${partition[@]}" \
      --moe-emit-plan="output=$work/$name-b$length.moeplan seed=1 gpu-kernels=none" \
      -o /dev/null
    if [ "$first" = 1 ]; then
      train_plan=$work/$name-b$length.moeplan
      first=0
    else
      bucket_args+=(--bucket-plan "$work/$name-b$length.moeplan")
    fi
  done
  echo "-- length buckets $buckets (moe-train --bucket-plan)"
fi
"$bin/moe-opt" "$work/$name-eval.mlir" \
  --moe-training-pipeline="$pipeline decoder=true" \
  --moe-emit-plan="output=$work/$name-eval.moeplan seed=1 gpu-kernels=none" \
  -o /dev/null
if [ "$ranks" = 2 ]; then
  echo "-- the partitioning (per rank; moe-partition-report)"
  "$bin/moe-opt" "$work/$name.mlir" --moe-training-pipeline="$pipeline" \
    "${partition[@]}" --moe-partition-report -o /dev/null 2>&1 | head -n 30
fi

launch=("$bin/moe-train")
[ "$ranks" = 2 ] && launch=(mpirun --oversubscribe -np 2 --bind-to none \
  -x OMP_NUM_THREADS=1 "$bin/moe-train")
checkpoint=$work/checkpoint.safetensors
metrics=$work/metrics.jsonl
bleu=$work/bleu.jsonl
# A previous run continues only with the same model and training recipe.
recipe=$pipeline
[ "$buckets" != off ] && recipe="$pipeline buckets=$buckets"
signature=$(cat "$config" <(echo "$recipe") | sha256sum | cut -c1-16)
if [ "$(cat "$work/.signature" 2>/dev/null)" != "$signature" ]; then
  rm -f "$checkpoint" "$metrics"
  echo "$signature" > "$work/.signature"
fi

train_to() { # train (or continue) up to step $1
  local resume=()
  [ -f "$checkpoint" ] && resume=(--resume "$checkpoint")
  "${launch[@]}" "$train_plan" "${bucket_args[@]}" --data "$corpus" \
    --steps "$1" "${resume[@]}" --save "$checkpoint" --metrics "$metrics" \
    --log-every 100
}
evaluate() { # held-out BLEU of the checkpoint: evaluate SENTENCES JSON ...
  "$bin/moe-eval" "$work/$name-eval.moeplan" --checkpoint "$checkpoint" \
    --data "$corpus" --languages "$languages" --sentences "$1" \
    --json "$2" "${@:3}"
}
last_step() { "$py" -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; print(rows[-1]['step'] if rows else 0)" "$metrics" 2>/dev/null || echo 0; }
seconds_per_step() { "$py" -c "
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])][-50:]
print(sum(r['seconds'] for r in rows)/max(1,len(rows)))" "$metrics"; }

echo
echo "== 3. training for $minutes minutes on $ranks rank(s), evaluating as it goes"
start=$(last_step)
[ "$start" -gt 0 ] && echo "(continuing the previous run from step $start; --fresh starts over)"
rm -f "$bleu"
budget=$("$py" -c "print(int(float('$minutes') * 60))")
began=$(date +%s)
step=$start
# 50 steps measure the speed; then 4 segments, each an equal share of the
# time left (evaluations included) at the measured speed, each followed by
# an evaluation.
train_to $((step + 50))
step=$((step + 50))
segments=4
for k in $(seq 1 $segments); do
  left=$(( budget - ($(date +%s) - began) ))
  steps=$("$py" -c "print(max(10, int($left / ($segments - $k + 1) / $(seconds_per_step))))")
  train_to $((step + steps))
  step=$((step + steps))
  echo "-- held-out BLEU at step $step"
  evaluate "$sentences" "$work/eval.json"
  cat "$work/eval.json" >> "$bleu"
done
trained=$(( $(date +%s) - began ))

echo
echo "== 4. final evaluation ($final_sentences test sentences per direction)"
evaluate "$final_sentences" "$work/final.json" \
  --hypotheses "$work/translations" --direction both

experts=$(setting "moe['num_experts']")
keep=$((experts / 2))
echo
echo "== 5. expert pruning for inference: the $keep most used of $experts experts per MoE layer"
"$bin/moe-prune" --checkpoint "$checkpoint" --metrics "$metrics" \
  --keep "$keep" --config "$work/$name-eval.json" \
  --out "$work/pruned.safetensors" --out-config "$work/pruned.json"
"$bin/moe-model-gen" "$work/pruned.json" -o "$work/pruned.mlir"
"$bin/moe-opt" "$work/pruned.mlir" --moe-training-pipeline="$pipeline decoder=true" \
  --moe-emit-plan="output=$work/pruned.moeplan seed=1 gpu-kernels=none" \
  -o /dev/null
"$bin/moe-eval" "$work/pruned.moeplan" --checkpoint "$work/pruned.safetensors" \
  --data "$corpus" --languages "$languages" --sentences "$final_sentences" \
  --json "$work/pruned-eval.json"
"$py" - "$work/final.json" "$work/pruned-eval.json" <<'EOF2'
import json, sys
full, pruned = (json.load(open(p)) for p in sys.argv[1:])
def summary(e):
    rows = [r for r in e["rows"] if r["source"] == "en"]
    bleu = sum(r["bleu"] for r in rows) / len(rows)
    speed = sum(r["sentences"] for r in rows) / sum(r["seconds"] for r in rows)
    return bleu, speed
(b0, s0), (b1, s1) = summary(full), summary(pruned)
print(f"English->X average BLEU {b0:.2f} with every expert, {b1:.2f} pruned; "
      f"decoding {s0:.1f} -> {s1:.1f} sentences/s")
EOF2

"$py" scripts/plot_run.py "$metrics" "$bleu" "$work"
echo
echo "trained $((step - start)) steps in $((trained / 60)) min $((trained % 60)) s (with evaluations);"
echo "translations: $work/translations/ (score again: $bin/moe-bleu REF -i HYP -m bleu chrf)"
echo "metrics: $metrics, BLEU over training: $bleu, final table: $work/final.json,"
echo "checkpoint: $checkpoint"
