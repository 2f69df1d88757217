#!/usr/bin/env bash
# Learning before/after a change: run the same short training commands on an older commit and on this tree,
# then compare their eval returns at every evaluation (identical when the change keeps the arithmetic).
#
#     bash scripts/parity.sh f185339            # old commit; results in runs/results/parity/{old,new}/<run>
#     QUICK=1 bash scripts/parity.sh f185339    # shorter runs, and every loop kind: DQN, DDPG, TD3, SAC, A2C,
#                                               # PPO and CQL (on the SAC run's recorded replay); runs/results/parity_quick
#
# One run at a time, 1 torch thread each (about 25 min on 2 cores; QUICK about 10 min on one core). Finished runs
# are skipped on a rerun. Identical arithmetic gives identical returns at any budget, so QUICK suffices for a
# refactoring; the long set also shows how far learning gets.
set -euo pipefail
OLD_REV=${1:?usage: scripts/parity.sh <old commit>}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
OUT=$ROOT/runs/results/parity
[ "${QUICK:-0}" = 1 ] && OUT=$ROOT/runs/results/parity_quick
OLD_TREE=$(mktemp -d /tmp/parity_old.XXXX)
git -C "$ROOT" worktree add --detach "$OLD_TREE" "$OLD_REV" >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$OLD_TREE"' EXIT
mkdir -p "$OUT"

run() {  # run <old|new> <name> overrides...
    local ver=$1 name=$2; shift 2
    local tree=$ROOT; [ "$ver" = old ] && tree=$OLD_TREE
    [ -f "$OUT/$ver/$name/done" ] && return 0
    echo "$ver $name"
    (cd "$tree" && OMP_NUM_THREADS=1 "$PY" train.py "$@" hardware.threads=1 logger=none progress=false \
        hydra.run.dir="$OUT/$ver/$name" > "$OUT/$ver.$name.log" 2>&1)
}
for ver in old new; do
    if [ "${QUICK:-0}" = 1 ]; then
        for a in td3 sac ddpg; do
            run $ver ${a}_pendulum_s0 algo=$a env=pendulum total_steps=3000 eval_every=1000 seed=0 \
                algo.random_steps=500 algo.learning_starts=500 $([ $a = sac ] && echo dataset.record=true)
        done
        run $ver dqn_cartpole_s0 algo=dqn env=cartpole total_steps=10000 eval_every=2500 seed=0
        run $ver a2c_cartpole_s0 algo=a2c env=cartpole total_steps=30000 eval_every=5000 seed=0
        run $ver ppo_pendulum_s0 algo=ppo env=pendulum total_steps=16384 eval_every=4096 seed=0
        # both trees train on the old tree's recorded replay (identical to the new one's when the SAC runs are)
        run $ver cql_pendulum_s0 algo=cql env=pendulum dataset.path="$OUT/old/sac_pendulum_s0/dataset.npz" \
            total_updates=1500 eval_every=500 seed=0
        continue
    fi
    for s in 0 1; do
        for a in td3 sac ddpg; do
            run $ver ${a}_pendulum_s$s algo=$a env=pendulum total_steps=10000 eval_every=1000 seed=$s
        done
        run $ver dqn_cartpole_s$s algo=dqn env=cartpole total_steps=30000 eval_every=5000 seed=$s
    done
    run $ver td3_hopper_s0 algo=td3 env=hopper total_steps=20000 eval_every=5000 algo.random_steps=5000 \
        algo.learning_starts=5000 seed=0
done
"$PY" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def evals(d):
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["eval/return_mean"]) for r in rows if "eval/return_mean" in r]
for d in sorted((out / "old").iterdir()):
    old, new = evals(d), evals(out / "new" / d.name)
    print(f"{d.name:20s} {len(old)} evals  identical: {old == new}  final old {old[-1][1]:.1f} new {new[-1][1]:.1f}")
PY
