#!/bin/sh
# moe-train on the tiny partitioned step (TinyPlan.h) as a user runs it:
#   * a plan for 2 ranks run as one process: a clear error naming the grid
#     and the mpirun command, non-zero exit, before anything runs;
#   * under mpirun: rank 0 alone prints and writes the metrics, every rank
#     writes its --comm-stats file ({rank}), all steps send the same bytes;
#   * resume on the grid is bit-exact (checkpoint and metrics);
#   * a checkpoint of the 2 x 2 grid continues on one process and on 4 x 1.
# Usage: moe_train_grid.sh MOE_TRAIN TINY_PLAN_TOOL MPIEXEC WORKDIR [FLAGS...]
set -eu
train=$1 tool=$2 mpiexec=$3 work=$4
shift 4
mpirun() { "$mpiexec" "$@"; }
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$tool" 1 1 one.moeplan
"$tool" 2 1 dp2.moeplan
"$tool" 2 2 dp2tp2.moeplan
"$tool" 4 1 dp4.moeplan

# World size != grid size.
if "$train" dp2.moeplan --steps 2 --alphabet 0 > out.txt 2> err.txt; then
  fail "a 2-rank plan ran in one process"
fi
grep -q "the plan's device grid dp=2 x ep=1 x tp=1 has 2 ranks, but this job has 1 process; run it as mpirun -np 2 moe-train dp2.moeplan" err.txt ||
  fail "unexpected message: $(cat err.txt)"
if grep -q "step " out.txt; then fail "steps ran despite the error"; fi
if mpirun -np 4 "$@" "$train" dp2.moeplan --steps 2 --alphabet 0 > out.txt 2> err.txt; then
  fail "a 2-rank plan ran on 4 processes"
fi
test "$(grep -c "run it as mpirun -np 2" err.txt)" = 1 ||
  fail "expected one message from rank 0: $(cat err.txt)"

# Training on 4 ranks.
mpirun -np 4 "$@" "$train" dp2tp2.moeplan --steps 4 --alphabet 0 --seed 5 \
  --metrics full.jsonl --save full.safetensors --comm-stats 'stats.{rank}.json' > out.txt
test "$(grep -c '^step ' out.txt)" = 2 || fail "expected rank 0's progress only: $(cat out.txt)"
test "$(wc -l < full.jsonl)" = 4 || fail "expected 4 metrics records"
for rank in 0 1 2 3; do
  test -f stats.$rank.json || fail "no stats.$rank.json"
  grep -q "\"rank\": $rank, \"world_size\": 4, \"grid\": {\"dp\": 2, \"ep\": 1, \"tp\": 2}" stats.$rank.json ||
    fail "stats.$rank.json: $(cat stats.$rank.json)"
  grep -q '"same_every_step": true' stats.$rank.json || fail "bytes differ between steps"
  grep -q '"all_reduce": {"calls": 3, "bytes_sent": [1-9]' stats.$rank.json ||
    fail "stats.$rank.json: $(cat stats.$rank.json)"
done

# Resume on the same grid: bit-exact.
mpirun -np 4 "$@" "$train" dp2tp2.moeplan --steps 2 --alphabet 0 --seed 5 \
  --metrics resumed.jsonl --save half.safetensors > /dev/null
mpirun -np 4 "$@" "$train" dp2tp2.moeplan --steps 4 --alphabet 0 --seed 5 \
  --metrics resumed.jsonl --save resumed.safetensors --resume half.safetensors > out.txt
grep -q "resumed from half.safetensors at step 2" out.txt || fail "no resume message"
cmp full.safetensors resumed.safetensors || fail "resumed checkpoint differs"
sed 's/"seconds": [^,]*,//' full.jsonl > a.txt
sed 's/"seconds": [^,]*,//' resumed.jsonl > b.txt
diff a.txt b.txt || fail "resumed metrics differ"

# The 2 x 2 checkpoint continues on one process and on 4 x 1.
"$train" one.moeplan --steps 4 --alphabet 0 --seed 5 --resume half.safetensors \
  --save one.safetensors > /dev/null
mpirun -np 4 "$@" "$train" dp4.moeplan --steps 4 --alphabet 0 --seed 5 \
  --resume half.safetensors --save dp4.safetensors > /dev/null
echo "moe-train grid checks passed"
