"""Several seeds in one process (``hardware.seeds_per_process``; rlbase/algos/stacked.py, rlbase/loops/seeds.py)."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from rlbase import algos
from rlbase.algos.stacked import StackedDQN, StackedSAC, StackedTD3
from rlbase.core.buffer import Batch
from rlbase.core.seeding import AgentRandom
from rlbase.envs import EnvSpec

SPEC = EnvSpec("Toy-v0", (5,), False, 0, (2,), np.array([-2.0, -1.0], np.float32), np.array([2.0, 1.0], np.float32), 100)


def agents(name: str, seeds, **over):
    module = algos.get(name)
    cfg = module.Config(**{"actor_hidden": [32, 32], "critic_hidden": [32, 32], **over})
    return [module.Agent(cfg, SPEC, torch.device("cpu"), AgentRandom(s)) for s in seeds]


def batches(k: int, n: int, seed: int = 0) -> list[list[Batch]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        per_seed = []
        for _ in range(k):
            b = 64
            per_seed.append(Batch(torch.randn(b, 5, generator=g), torch.rand(b, 2, generator=g) * 2 - 1,
                                  torch.randn(b, generator=g), torch.randn(b, 5, generator=g),
                                  (torch.rand(b, generator=g) < 0.1).float(), torch.zeros(b)))
        out.append(per_seed)
    return out


def stacked(per_seed: list[Batch]) -> Batch:
    return Batch(*(torch.stack(fields) for fields in zip(*per_seed)))


@pytest.mark.parametrize("name,over", [("td3", {}), ("ddpg", {}), ("td3", {"critic_action_layer": 1, "critic_weight_decay": 1e-2})])
def test_the_stacked_update_is_k_separate_updates(name, over):
    """Same weights, same batches, same generators: every seed's weights, Adam moments and losses after several
    updates (actor and target updates included) equal its own agent's to float tolerance."""
    seeds = [3, 11, 12]
    alone = agents(name, seeds, **over)
    group = StackedTD3(agents(name, seeds, **over))
    for j, a in enumerate(alone):  # the stack starts from each seed's own initial weights
        for key, value in a.state_dict()["actor"].items():
            torch.testing.assert_close(group.state_dict(j)["actor"][key], value, rtol=0, atol=0)
    for step in batches(len(seeds), 6):
        metrics = group.update(stacked(step))
        for j, (a, b) in enumerate(zip(alone, step)):
            m = a.update(b)
            torch.testing.assert_close(metrics["loss/critic"][j], m["loss/critic"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(metrics["loss/actor"][j], m["loss/actor"], rtol=1e-5, atol=1e-6)
    for j, a in enumerate(alone):
        mine, theirs = group.state_dict(j), a.state_dict()
        for net in ("actor", "actor_target", "critic", "critic_target"):
            for key in theirs[net]:
                torch.testing.assert_close(mine[net][key], theirs[net][key], rtol=1e-5, atol=1e-6)
        for opt in ("actor_opt", "critic_opt"):
            for i, s in theirs[opt]["state"].items():
                for key in ("exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(mine[opt]["state"][i][key], s[key], rtol=1e-5, atol=1e-7)
        assert mine["updates"] == theirs["updates"]


@pytest.mark.parametrize("over", [{}, {"autotune": False, "log_prob_eps": 1e-6}])
def test_the_stacked_sac_update_is_k_separate_updates(over):
    """SAC: the same check, its per-seed temperature and reparameterised samples (each seed's own generator) included."""
    seeds = [2, 9]
    alone = agents("sac", seeds, **over)
    group = StackedSAC(agents("sac", seeds, **over))
    for step in batches(len(seeds), 5):
        metrics = group.update(stacked(step))
        for j, (a, b) in enumerate(zip(alone, step)):
            m = a.update(b)
            for key in ("loss/critic", "loss/actor", "train/alpha", "train/entropy"):
                torch.testing.assert_close(metrics[key][j], m[key], rtol=1e-5, atol=1e-6)
    for j, a in enumerate(alone):
        mine, theirs = group.state_dict(j), a.state_dict()
        torch.testing.assert_close(mine["log_alpha"], theirs["log_alpha"], rtol=1e-6, atol=1e-7)
        for net in ("actor", "critic", "critic_target"):
            for key in theirs[net]:
                torch.testing.assert_close(mine[net][key], theirs[net][key], rtol=1e-5, atol=1e-6)
        for opt in ("actor_opt", "alpha_opt"):
            for i, s in theirs[opt]["state"].items():
                torch.testing.assert_close(mine[opt]["state"][i]["exp_avg"], s["exp_avg"], rtol=1e-5, atol=1e-7)
        plain = agents("sac", [0])[0]
        plain.load_state_dict(mine)  # a seed's slice is a plain SAC agent's state
        x = torch.ones(3, 5)
        torch.testing.assert_close(group.act_one(j, x, True, None), a.act(x, deterministic=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("over", [{"grad_clip_norm": 0.5, "target_update_every": 3}, {"double": True, "amsgrad": False}])
def test_the_stacked_dqn_update_is_k_separate_updates(over):
    """DQN: the same check, with each seed's own gradient-norm clip and epsilon-greedy draws."""
    spec = EnvSpec("ToyDiscrete-v0", (5,), True, 3, (), None, None, 100)
    module = algos.get("dqn")
    cfg = module.Config(hidden=[32, 32], **over)
    make = lambda: [module.Agent(cfg, spec, torch.device("cpu"), AgentRandom(s)) for s in (4, 8)]  # noqa: E731
    alone, group = make(), StackedDQN(make())
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        step = [Batch(torch.randn(32, 5, generator=g), torch.randint(0, 3, (32,), generator=g), torch.randn(32, generator=g),
                      torch.randn(32, 5, generator=g), (torch.rand(32, generator=g) < 0.1).float(), torch.zeros(32))
                for _ in alone]
        metrics = group.update(stacked(step))
        for j, (a, b) in enumerate(zip(alone, step)):
            torch.testing.assert_close(metrics["loss/q"][j], a.update(b)["loss/q"], rtol=1e-5, atol=1e-6)
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(2, 5)), dtype=torch.float32)
    for _ in range(20):  # exploration: each seed's epsilon and draws, as its own agent
        assert torch.equal(group.act_all(x, [True, True]), torch.cat([a.act(x[j:j + 1]) for j, a in enumerate(alone)]))
    for j, a in enumerate(alone):
        for key, value in a.state_dict()["q"].items():
            torch.testing.assert_close(group.state_dict(j)["q"][key], value, rtol=1e-5, atol=1e-6)
        assert group.state_dict(j)["explore_steps"] == a.explore_steps


def test_a_seeds_slice_loads_into_its_own_agent_and_back():
    """A seed's checkpoint entry is the single agent's format: it loads into a plain agent, and back into a stack."""
    group = StackedTD3(agents("td3", [0, 1]))
    group.update(stacked(batches(2, 1)[0]))
    group.update(stacked(batches(2, 1, seed=1)[0]))
    plain = agents("td3", [7])[0]
    plain.load_state_dict(group.state_dict(1))
    other = StackedTD3(agents("td3", [5, 6]))
    other.load_state_dict(0, plain.state_dict())
    for net in ("actor", "critic_target"):
        for key, value in group.state_dict(1)[net].items():
            torch.testing.assert_close(other.state_dict(0)[net][key], value, rtol=0, atol=0)
    x = torch.ones(1, 5)
    torch.testing.assert_close(other.act_one(0, x, True, None), plain.act(x, deterministic=True), rtol=1e-5, atol=1e-6)
    # and the loaded agent trains on as its slice does (its Adam moments contiguous, the fused kernel reads them right)
    step = batches(2, 1, seed=2)[0]
    group.rngs[1].update.set_state(plain.rng.update.get_state())
    group.update(stacked(step))
    plain.update(step[1])
    for key, value in plain.state_dict()["actor"].items():
        torch.testing.assert_close(group.state_dict(1)["actor"][key], value, rtol=1e-5, atol=1e-6)


# --- the runs: lockstep, exact resume, divergence, independence --------------------------------------------------
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from rlbase.core import checkpoint  # noqa: E402
from tests.conftest import ROOT, eval_returns, run_train  # noqa: E402

# checkpoints every 300 steps: Pendulum's episodes are 200 long, so a checkpoint falls mid-episode and the resume
# must replay that episode's actions
SMALL = ["env=pendulum", "total_steps=1300", "checkpoint_every=300", "eval_every=400", "eval_episodes=2",
         "algo.random_steps=200", "algo.learning_starts=200", "algo.actor_hidden=[32,32]", "algo.critic_hidden=[32,32]",
         "hardware.threads=1"]


def seed_dirs(base, seeds):
    return [base / f"s{s}" for s in seeds]


# SAC's and DQN's slices of the checkpoint are checked by the equality tests above; the resume itself is the loop's
@pytest.mark.parametrize("algo,sig", [("td3", signal.SIGKILL), ("td3", signal.SIGTERM)])
def test_k_seeds_in_one_process_resume_exactly_after_sigkill(tmp_path, algo, sig):
    """Killed after its first checkpoint (SIGKILL: the seeds' checkpoints of one step, or one of them a step
    ahead; SIGTERM: every seed checkpoints at the step the signal is handed on, mid-episode), the group resumes
    from one seed's directory and ends exactly where an uninterrupted group does."""
    args = [f"algo={algo}", *SMALL, "hardware.seeds_per_process=2", "seed=1"]
    for d in ("straight", "killed"):
        (tmp_path / d).mkdir()
    run_train(*args, run_dir=tmp_path / "straight" / "s${seed}")
    killed = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "logger=none", "progress=false", f"hydra.run.dir={killed}/s${{seed}}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "s2" / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait()
    assert not (killed / "s1" / "done").exists(), "the run finished before it could be killed"
    if sig == signal.SIGTERM:
        steps = {checkpoint.load(killed / f"s{s}")["step"] for s in (1, 2)}
        assert len(steps) == 1 and steps.isdisjoint({300, 600, 900, 1200}), steps  # one step for both, not a periodic one
    resumed = run_train(f"resume={killed / 's2'}", run_dir=killed / "s2")  # one seed's directory brings back both
    assert "resumed from step" in resumed.stdout + resumed.stderr
    for a, b in zip(seed_dirs(killed, (1, 2)), seed_dirs(tmp_path / "straight", (1, 2))):
        assert (a / "done").exists()
        assert eval_returns(a) == eval_returns(b)
        mine, theirs = checkpoint.load(a)["agent"], checkpoint.load(b)["agent"]
        for net in ("actor", "critic", "critic_target"):
            for key in theirs[net]:
                assert torch.equal(mine[net][key], theirs[net][key]), (a, net, key)


def test_a_seeds_results_do_not_depend_on_the_seeds_beside_it(tmp_path, monkeypatch):
    """Seed 1 trained beside seed 2 (from Python: rlbase.run_seeds) and beside seed 7 (a command-line sweep): its
    own streams, so the same evaluations (for the same K)."""
    import rlbase

    monkeypatch.chdir(tmp_path)
    results = rlbase.run_seeds(["algo=td3", *SMALL, "seed=1", "logger=none", "progress=false"], seeds=2,
                               run_dir=tmp_path / "a" / "s")
    assert [r.run_dir.name for r in results] == ["s_seed1", "s_seed2"] and all((r.run_dir / "done").exists() for r in results)
    assert results[1].config.seed == 2 and results[0].final_return == eval_returns(results[0].run_dir)[-1][1]
    with pytest.raises(rlbase.runtime.validate.ConfigError, match="rlbase.run_seeds trains several"):
        rlbase.run(["algo=td3", "hardware.seeds_per_process=2"])
    (tmp_path / "b").mkdir()
    run_train("-m", "algo=td3", *SMALL, "hardware.seeds_per_process=2", "seed=1,7", f"hydra.sweep.dir={tmp_path / 'b'}",
              "hydra.sweep.subdir=s${seed}", run_dir=tmp_path / "b" / "unused")
    assert eval_returns(results[0].run_dir) == eval_returns(tmp_path / "b" / "s1")
    assert eval_returns(results[1].run_dir) != eval_returns(tmp_path / "b" / "s7")
    assert (tmp_path / "b" / "s7" / "done").exists()


def test_a_diverging_seed_stops_alone(tmp_path, monkeypatch):
    """NaN weights in seed 2's actor after 100 updates: seed 2 stops with the non-finite line in its own log (exit
    code 3 for the process), seed 1 trains to its end."""
    original = StackedTD3.update

    def update(self, batch):
        if self.updates == 100:
            with torch.no_grad():
                self.actor.params[0][1].fill_(float("nan"))
        return original(self, batch)

    monkeypatch.setattr(StackedTD3, "update", update)
    proc = run_train("algo=td3", *SMALL, "hardware.seeds_per_process=2", "seed=1", run_dir=tmp_path / "s${seed}", check=False)
    assert proc.returncode == 3
    assert (tmp_path / "s1" / "done").exists()
    assert not (tmp_path / "s2" / "done").exists()
    assert "non-finite" in (tmp_path / "s2" / "train.log").read_text()
    assert "non-finite" not in (tmp_path / "s1" / "train.log").read_text()
    assert (tmp_path / "s2" / "diverged").exists()  # a resume of the group leaves it out


def test_dqn_seeds_in_one_process_train_cartpole(tmp_path):
    """DQN's stacked form on the real loop: every seed of the group learns CartPole at RL-Zoo's settings (a random
    policy scores about 22; these seeds score 134 and 137 at 10k steps on this machine, full learning is the single
    DQN's test's)."""
    run_train("algo=dqn", "env=cartpole", "total_steps=10000", "eval_every=5000", "eval_episodes=5",
              "hardware.seeds_per_process=2", "seed=0", run_dir=tmp_path / "s${seed}")
    for s in (0, 1):
        assert max(r for _, r in eval_returns(tmp_path / f"s{s}")) >= 100, s


def test_an_algorithm_without_a_stacked_form_is_refused_in_one_line(tmp_path):
    proc = run_train("algo=ppo", "env=pendulum", "hardware.seeds_per_process=2", run_dir=tmp_path / "s${seed}", check=False)
    assert proc.returncode == 2
    assert "allowed with several seeds in one process: dqn" in proc.stderr and "sac" in proc.stderr
