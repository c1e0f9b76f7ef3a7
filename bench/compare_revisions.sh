#!/bin/bash
# The same PPO runs at two revisions of this repository, each evaluated by the teacher
# and the held-out judge: does a change to the training code move training results?
# (issue 15, acceptance 3). Resumable: a run whose evaluations exist is skipped.
#
#   bash bench/compare_revisions.sh BEFORE AFTER OUT_DIR [SEEDS...]   (default seeds: 0 1 2 3)
#
# Each revision is exported with `git archive` into OUT_DIR/src-REV and run from there
# with this checkout's virtual environment, one thread (deterministic on CPU): train
# 20,480 tokens (bench_peers' PPO settings), then `storytelling eval` on 64 stories with
# the held-out judge lm:gemma and on 256 stories with the teacher alone. OUT_DIR/table.md
# gets one row per seed and revision.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash bench/compare_revisions.sh BEFORE AFTER OUT_DIR [SEEDS...]" >&2
  exit 2
fi
before=$1 after=$2 out=$(realpath -m "$3")
shift 3
seeds=${*:-0 1 2 3}
repo=$(git rev-parse --show-toplevel)
python=$repo/.venv/bin/python
mkdir -p "$out"
for rev in "$before" "$after"; do
  git -C "$repo" rev-parse --verify --quiet "$rev^{commit}" > /dev/null \
    || { echo "compare_revisions: $rev is not a commit of $repo" >&2; exit 2; }
  [ -d "$out/src-$rev" ] || { mkdir "$out/src-$rev" && git -C "$repo" archive "$rev" | tar -x -C "$out/src-$rev"; }
done
export OMP_NUM_THREADS=1
for seed in $seeds; do
  for rev in "$before" "$after"; do
    run=$out/run-$rev-s$seed
    [ -f "$run.eval256.json" ] && continue
    resume=()
    [ -f "$run/checkpoint.json" ] && resume=(--resume)
    (cd "$out/src-$rev" && PYTHONPATH=$out/src-$rev "$python" -m story_env.run.cli train \
      --algorithm ppo --student tiny --teacher heuristic --steps 20480 --num-envs 16 \
      --kl-coef 0.01 --seed "$seed" --no-progress --out "$run" "${resume[@]}" \
      --algo-kwargs '{"n_steps": 64, "batch_size": 512, "n_epochs": 2, "learning_rate": 1e-4}' \
      && PYTHONPATH=$out/src-$rev "$python" -m story_env.run.cli eval --checkpoint "$run" \
        --stories 64 --seed 0 --judge lm:gemma --json "$run.eval.json" \
      && PYTHONPATH=$out/src-$rev "$python" -m story_env.run.cli eval --checkpoint "$run" \
        --stories 256 --seed 0 --no-judge --json "$run.eval256.json") > "$run.log" 2>&1
  done
done
"$python" - "$out" "$before" "$after" $seeds <<'PY'
import json, sys
out, before, after, *seeds = sys.argv[1:]
fmt = lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"
rows = ["| seed | revision | teacher, 64 stories | held-out judge lm:gemma, 64 | teacher, 256 stories |",
        "|---|---|---|---|---|"]
for seed in seeds:
    for rev in (before, after):
        a = json.load(open(f"{out}/run-{rev}-s{seed}.eval.json"))
        b = json.load(open(f"{out}/run-{rev}-s{seed}.eval256.json"))
        judge = a["judges"]["lm:gemma"]["total"]
        rows.append(f"| {seed} | {rev} | {fmt(a['teacher_score'])} | {fmt(judge)} | {fmt(b['teacher_score'])} |")
open(f"{out}/table.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
