"""Random streams: every stream of a run is spawned from its seed, no two seeds share one, and evaluation draws
from a stream of its own (so how often a run evaluates never changes how it trains)."""

import numpy as np
import pytest

from rlbase import envs
from rlbase.core import seeding
from tests.conftest import read_rows, run_train
from tests.test_offline import pendulum_dataset

ITEMS = {"eval_episode": 100, "sub_env": 64, "worker": 16}  # items per stream that a run may use


def run_seeds(seed: int) -> list[int]:
    """Every seed a run of ``seed`` hands out: each stream, each item, and the spaces of each env it builds."""
    out = [seeding.stream(seed, name, i) for name in seeding.STREAMS for i in range(ITEMS.get(name, 1))]
    env_seeds = [seeding.stream(seed, "train_env"), seeding.stream(seed, "eval_env"), *seeding.sub_env_seeds(seed, 64)]
    out += [seeding.stream(s, space) for s in env_seeds for space in ("action_space", "observation_space")]
    return out


def test_streams_of_seeds_0_to_4_share_no_seed():
    seeds = [s for seed in range(5) for s in run_seeds(seed)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeding.stream(3, "replay") == seeding.stream(3, "replay")  # a function of (seed, stream, item) only


def test_sub_envs_and_evaluation_episodes_of_adjacent_seeds_differ():
    """Under ``seed + i`` schemes, seed 1's sub-env i was seed 0's sub-env i + 1 (15 of 16 shared)."""
    cfg = envs.EnvConfig(name="cartpole", id="CartPole-v1")
    first = {}
    for seed in (0, 1):
        venv, _ = envs.make_vector(cfg, seed, 16)
        obs, _ = venv.reset(seed=seeding.sub_env_seeds(seed, 16))
        first[seed] = {tuple(np.round(o, 6)) for o in obs}
        venv.close()
    assert len(first[0]) == 16 and not first[0] & first[1]
    env, _ = envs.make(cfg, 0, train=False)
    starts = {seed: {tuple(np.round(env.reset(seed=seeding.stream(seed, "eval_episode", i))[0], 6)) for i in range(10)}
              for seed in (0, 1)}
    assert not starts[0] & starts[1]


def test_agent_streams_are_distinct_and_restore_exactly():
    import torch

    a, b = seeding.AgentRandom(0), seeding.AgentRandom(1)
    draws = {name: torch.rand(8, generator=getattr(a, name)) for name in ("init", "explore", "update")}
    assert not torch.equal(draws["explore"], draws["update"]) and not torch.equal(draws["init"], draws["explore"])
    assert not torch.equal(torch.rand(8, generator=b.explore), torch.rand(8, generator=seeding.AgentRandom(0).explore))
    state = a.state_dict()
    ahead = torch.rand(8, generator=a.explore), torch.rand(8, generator=a.update)
    a.load_state_dict(state)
    assert torch.equal(torch.rand(8, generator=a.explore), ahead[0]) and torch.equal(torch.rand(8, generator=a.update), ahead[1])


def test_a_run_reads_no_process_global_generator(tmp_path, compose_cfg):
    """The same run with the global generators seeded differently beforehand (and drawn from between its steps)
    logs the same rows: every draw comes from generators the run owns."""
    import random

    import torch

    from rlbase.runtime import job as train
    from rlbase.runtime.validate import validate

    def logged(global_seed: int, name: str) -> list[dict]:
        random.seed(global_seed)
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        cfg = compose_cfg(*INTERLEAVED[name], "seed=3", "logger=none", "progress=false", "eval_every=200",
                          "eval_episodes=2", "log_every=100", "checkpoint_every=100000")
        run_dir = tmp_path / f"{name}{global_seed}"
        run_dir.mkdir()
        steps = train.steps(cfg, validate(cfg), run_dir)
        while True:  # someone else's code draws from the global generators between the run's steps
            try:
                next(steps)
            except StopIteration:
                break
            random.random(), np.random.rand(), torch.rand(3)
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_rows(run_dir)]

    for name in ("sac", "ppo"):  # a continuous off-policy learner and a sampling on-policy one
        assert logged(1, name) == logged(2, name), name


# Short runs that update from early on; a3c is left out: its workers are asynchronous, so no two of its runs train
# alike whatever the evaluation does. Small networks: what these tests compare (rows logged with and without
# evaluations, runs alone and interleaved) does not depend on their size, and the defaults' (256 wide, BCQ's VAE
# 750) made this file take twice as long.
AC = ["algo.actor_hidden=[32,32]", "algo.critic_hidden=[32,32]"]
ONLINE = {
    "dqn": ["env=cartpole", "total_steps=800", "algo.random_steps=100", "algo.learning_starts=100", "algo.hidden=[32,32]"],
    "ddpg": ["env=pendulum", "total_steps=600", "algo.random_steps=200", "algo.learning_starts=200", *AC],
    "td3": ["env=pendulum", "total_steps=600", "algo.random_steps=200", "algo.learning_starts=200", *AC],
    "sac": ["env=pendulum", "total_steps=600", "algo.random_steps=200", "algo.learning_starts=200", *AC],
    "a2c": ["env=cartpole", "total_steps=800", "algo.num_envs=4"],
    "ppo": ["env=pendulum", "total_steps=512", "algo.num_envs=2", "algo.n_steps=64", "algo.n_epochs=2",
            "algo.n_minibatches=2"],
}
OFFLINE = {"bc": ["algo.hidden=[32,32]"], "td3_bc": AC, "iql": ["algo.hidden=[32,32]"], "cql": ["algo.num_random=2", *AC],
           "bcq": ["algo.n_act=5", "algo.n_target=5", "algo.vae_hidden=[32,32]", *AC], "sac_offline": AC}


def training_rows(run_dir):
    """The rows of losses and training statistics, without wall-clock rates."""
    rows = [{k: v for k, v in r.items() if not k.startswith(("time/", "eval/"))} for r in read_rows(run_dir)]
    return [r for r in rows if any(k.startswith(("loss/", "train/")) for k in r)]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return pendulum_dataset(tmp_path_factory.mktemp("data") / "mixed", episodes=6)


@pytest.mark.parametrize("algo", [*ONLINE, *OFFLINE])
def test_eval_every_leaves_training_identical(tmp_path, algo, mixed):
    if algo in ONLINE:
        args, budget = [f"algo={algo}", *ONLINE[algo]], ["log_every=100"]
        total = int(next(a for a in ONLINE[algo] if a.startswith("total_steps=")).partition("=")[2])
    else:
        args, budget = [f"algo={algo}", "env=pendulum", f"dataset.path={mixed}", *OFFLINE[algo]], ["log_every=20"]
        total = 120
        budget.append(f"total_updates={total}")
    rows = {}
    for every in (total // 4, total):  # four evaluations (eight episodes each) against one
        run_dir = tmp_path / f"every{every}"
        run_train(*args, *budget, f"eval_every={every}", "eval_episodes=8", f"checkpoint_every={total}",
                  run_dir=run_dir)
        rows[every] = training_rows(run_dir)
    assert len(rows[total]) >= 3 and any(k.startswith("loss/") for r in rows[total] for k in r)
    assert rows[total // 4] == rows[total]


INTERLEAVED = {  # short runs that each draw from the global generators (exploration, sampled actions) and update
    "sac": ["algo=sac", *ONLINE["sac"]],
    "dqn": ["algo=dqn", *ONLINE["dqn"]],
    "ppo": ["algo=ppo", *ONLINE["ppo"]],
}


def test_runs_interleaved_in_one_process_train_as_each_alone(tmp_path, compose_cfg):
    """Three runs stepped in turn in one process (one env step, or rollout, each) log exactly what each logs alone:
    their random state is their own, and the process's one signal handler serves all of them."""
    import signal

    from rlbase import loops
    from rlbase.loops import runner
    from rlbase.runtime import job as train
    from rlbase.runtime.validate import validate

    def steps(name: str, where: str):
        cfg = compose_cfg(*INTERLEAVED[name], "seed=3", "logger=none", "progress=false", "eval_every=200",
                          "eval_episodes=2", "log_every=100", "checkpoint_every=100000")
        run_dir = tmp_path / where / name
        run_dir.mkdir(parents=True)
        return train.steps(cfg, validate(cfg), run_dir)

    def rows(where: str, name: str):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_rows(tmp_path / where / name)]

    for name in INTERLEAVED:
        loops.drive(steps(name, "alone"))
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    gens = [steps(name, "together") for name in INTERLEAVED]

    def watch():  # while all three run: one handler for the process, and it is ours
        for _ in range(50):
            seen.append((len(runner.SIGNALS.active), signal.getsignal(signal.SIGTERM)))
            yield

    finals = loops.interleave([*gens, watch()])
    assert signal.getsignal(signal.SIGTERM) == before and not runner.SIGNALS.active
    assert (3, runner.SIGNALS._handle) in seen
    assert all(final is not None for final in finals[:3])
    for name in INTERLEAVED:
        alone, together = rows("alone", name), rows("together", name)
        assert len(alone) >= 5 and any("eval/return_mean" in r for r in alone)
        assert together == alone, name


def test_a_signal_stops_every_interleaved_run_at_a_checkpoint(tmp_path, compose_cfg):
    import os
    import signal

    from rlbase import loops
    from rlbase.core import checkpoint
    from rlbase.loops import runner
    from rlbase.runtime import job as train
    from rlbase.runtime.validate import validate

    gens, dirs = [], []
    for name in ("sac", "dqn"):
        cfg = compose_cfg(*INTERLEAVED[name], "logger=none", "progress=false", "eval_every=10000", "checkpoint_every=100000")
        dirs.append(tmp_path / name)
        dirs[-1].mkdir()
        gens.append(train.steps(cfg, validate(cfg), dirs[-1]))

    def sender():
        for i in range(300):
            if i == 250:
                os.kill(os.getpid(), signal.SIGTERM)
            yield

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(runner.Interrupted):
        loops.interleave([*gens, sender()])
    assert signal.getsignal(signal.SIGTERM) == before and not runner.SIGNALS.active
    steps = [checkpoint.load(d)["step"] for d in dirs]
    assert all(250 <= s <= 260 for s in steps), steps  # each wrote its checkpoint at its next step after the signal
