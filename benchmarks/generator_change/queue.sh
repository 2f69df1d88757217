#!/bin/bash
# Before/after runs of the generator change: $1 = a worktree of the commit to run, $2 = out dir; SEEDS="0 1 2 3 4";
# DS = the SAC Pendulum replay both versions train CQL/IQL on (recorded once: train.py algo=sac env=pendulum
# seed=0 dataset.record=true on the "before" commit). One run at a time, 1 thread; run two with disjoint SEEDS.
REPO=$1; OUT=$2; PY=${PY:-$(pwd)/.venv/bin/python}
export MUJOCO_GL=egl
common="logger=none progress=false hardware.threads=1"
run() { name=$1; shift; d=$OUT/$name; [ -f $d/done ] && return; [ -f $d/.hydra/config.yaml ] && [ ! -f $d/checkpoint.pt ] && rm -rf $d
  (cd $REPO && $PY train.py "$@" $common hydra.run.dir=$d > $OUT/$name.log 2>&1); echo "$(date +%T) $name rc=$?"; }
DS=${DS:?set DS=<path of the SAC Pendulum replay .npz>}
for s in $SEEDS; do
  run dqn-cartpole-seed$s algo=dqn env=cartpole seed=$s total_steps=30000 eval_every=5000
  run td3-pendulum-seed$s algo=td3 env=pendulum seed=$s total_steps=10000 eval_every=1000
  run sac-pendulum-seed$s algo=sac env=pendulum seed=$s total_steps=10000 eval_every=1000
  run ddpg-pendulum-seed$s algo=ddpg env=pendulum seed=$s total_steps=10000 eval_every=1000
  run ppo-cartpole-seed$s algo=ppo env=cartpole seed=$s total_steps=50000 eval_every=5000
  run a2c-cartpole-seed$s algo=a2c env=cartpole seed=$s total_steps=100000 eval_every=10000
  run cql-pendulum-seed$s algo=cql env=pendulum seed=$s dataset=pendulum_sac_replay dataset.path=$DS total_updates=3000 eval_every=500
  run iql-pendulum-seed$s algo=iql env=pendulum seed=$s dataset=pendulum_sac_replay dataset.path=$DS total_updates=10000 eval_every=1000
done
echo ALLDONE
