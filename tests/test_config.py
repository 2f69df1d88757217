"""Composition, schema errors and validation, through Hydra's compose API and through train.py."""

import shutil
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from rlbase import algos
from rlbase.conf import options
from rlbase.runtime.validate import ConfigError, validate
from tests.conftest import ROOT, run_train

ALGOS = options("algo")  # each algorithm's dataclass, and the variant files
ENVS = sorted(p.stem for p in (ROOT / "rlbase/conf/env").glob("*.yaml") if p.stem != "gym")


def test_algo_files_match_registry(compose_cfg):
    names = {compose_cfg(f"algo={a}").algo.name for a in ALGOS}
    assert names == set(algos.ALGOS)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env", ENVS)
def test_every_algo_env_pair_composes(compose_cfg, algo, env):
    cfg = compose_cfg(f"algo={algo}", f"env={env}")
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert algo.startswith(container["algo"]["name"]) and container["env"]["name"] == env
    assert isinstance(container["total_steps"], int) and container["total_steps"] > 0
    module = algos.get(cfg.algo.name)
    assert hasattr(module, "Agent") and hasattr(module, "Config")
    try:
        spec = validate(cfg)
        assert spec.kind in module.ACTION_SPACES
    except ConfigError as e:  # acceptable: the action space does not fit, or an offline algo has no dataset
        offline_needs_data = getattr(module, "OFFLINE", False) and "dataset=<name>" in str(e)
        assert ("actions" in str(e) or offline_needs_data) and "\n" not in str(e)


def test_slurm_hardware_selects_the_submitit_launcher():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "rlbase" / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hardware=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1 and launcher.signal_delay_s > 0 and cfg.hardware.device == "cuda"


def test_generic_env_takes_any_id(compose_cfg):
    cfg = compose_cfg("env=gym", "env.id=MountainCar-v0")
    assert cfg.env.name == "MountainCar-v0"
    assert validate(cfg).n_actions == 3



def _tuned_pair(stem: str) -> tuple[str, str]:
    """conf/tuned/<algo>_<env>[_<variant>].yaml -> (algo, env); algo and env names may hold underscores."""
    for algo in sorted(ALGOS, key=len, reverse=True):
        rest = stem[len(algo) + 1:] if stem.startswith(algo + "_") else None
        env = next((e for e in sorted(ENVS, key=len, reverse=True) if rest and (rest == e or rest.startswith(e + "_"))), None)
        if env:
            return algo, env
    raise AssertionError(f"conf/tuned/{stem}.yaml names no algo_env pair")


@pytest.mark.parametrize("stem", sorted(p.stem for p in (ROOT / "rlbase/conf/tuned").glob("*.yaml")))
def test_every_tuned_file_validates_for_its_pair(compose_cfg, stem):
    """Each tuned file, a named variant (`tuned=ppo_halfcheetah_zoo`) included, composes and passes validation."""
    algo, env = _tuned_pair(stem)
    cfg = compose_cfg(f"algo={algo}", f"env={env}", f"tuned={stem}")
    try:
        validate(cfg)
    except ConfigError as e:  # an offline algorithm's file: everything but the missing dataset checked out
        assert getattr(algos.get(cfg.algo.name), "OFFLINE", False) and "dataset=<name>" in str(e)
    if stem == "ppo_halfcheetah_zoo":  # a variant replaces the pair's own file
        assert cfg.algo.activation == "relu" and list(cfg.algo.hidden) == [256, 256] and not cfg.algo.lr_anneal

def test_tuned_file_loads_only_for_its_pair(compose_cfg, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "rlbase" / "conf", conf)
    (conf / "tuned" / "dqn_acrobot.yaml").write_text("# @package _global_\nalgo:\n  lr: 0.123\n")
    assert compose_cfg("env=acrobot", config_dir=conf).algo.lr == 0.123
    assert compose_cfg("env=cartpole", config_dir=conf).algo.lr != 0.123
    assert compose_cfg("env=acrobot", "algo.lr=0.5", config_dir=conf).algo.lr == 0.5  # command line wins


@pytest.mark.parametrize("override, error", [
    ("algo=nope", HydraException),
    ("algo.lr=abc", ValidationError),
    ("algo.lrr=0.1", ConfigCompositionException),
    ("algo.policy_noise=0.1", ConfigCompositionException),  # another algorithm's key
    ("total_steps=abc", ValidationError),
])
def test_bad_overrides_fail_at_composition(compose_cfg, override, error):
    with pytest.raises((error, ConfigKeyError, HydraException)):
        compose_cfg(override)


def test_misspelled_key_in_yaml_fails(compose_cfg, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "rlbase" / "conf", conf)
    (conf / "algo" / "dqn_typo.yaml").write_text("defaults:\n  - dqn\n  - _self_\n\nname: dqn_typo\neps_decayy: 10\n")
    with pytest.raises(HydraException, match="eps_decayy"):
        compose_cfg("algo=dqn_typo", config_dir=conf)


@pytest.mark.parametrize("overrides, needle", [
    (["env=pendulum"], "needs discrete actions"),
    (["algo.gamma=1.5"], "algo.gamma=1.5"),
    (["algo.batch_size=200000"], "batch_size=200000 is larger than algo.buffer_size"),
    (["total_steps=0"], "total_steps=0"),
    (["total_steps=-5"], "total_steps=-5"),
    (["algo.lr=-1"], "algo.lr=-1"),
    (["algo.tau=0"], "algo.tau=0"),
    (["algo=td3", "env=pendulum", "algo.policy_freq=0"], "algo.policy_freq=0 must be a positive integer"),
    (["algo.train_every=0"], "algo.train_every=0 must be a positive integer"),
    (["env.id=CartPole"], "not a registered gymnasium id"),
    (["logger.mode=sometimes"], "logger.mode=sometimes"),
    (["+algo.new_key=1"], "algo.new_key is not a setting of algo"),
    (["+hardware.thread=1"], "hardware.thread is not a setting of hardware (HardwareConfig); allowed: device, seed_list"),
    (["+totl_steps=500"], "totl_steps is not a setting of the run config (RunConfig)"),
    (["+logger.mod=x"], "logger.mod is not a setting of logger"),
    (["algo=ppo", "env=cartpole", "algo.n_epochs=0"], "algo.n_epochs=0 must be a positive integer"),
    (["algo=sac", "env=pendulum", "algo.actor_hidden=[0]"], "algo.actor_hidden=[0]: every hidden size must be a "
     "positive integer; allowed: a list of them"),
    (["algo=ppo", "env=cartpole", "algo.hidden=[64,-1]"], "algo.hidden=[64,-1]: every hidden size"),
    (["algo=ppo", "env=cartpole", "algo.hidden=[]", "algo.shared_trunk=true"], "algo.shared_trunk=true with "
     "algo.hidden=[]: a shared trunk needs at least one hidden layer"),
    (["algo=a3c", "env=cartpole", "algo.num_envs=1", "algo.hidden=[]", "algo.shared_trunk=true"], "a shared trunk"),
    (["algo=a2c", "env=pendulum", "algo.init_zero_inputs=84"], "algo.init_zero_inputs=84 shapes the orthogonal init "
     "only; allowed: algo.orthogonal_init=true with it, or algo.init_zero_inputs=0"),
    (["algo=ddpg_lillicrap", "env=pendulum", "algo.critic_hidden=[400]"], "algo.critic_action_layer=1 with "
     "algo.critic_hidden=[400]: the action enters after the first hidden layer"),
    (["algo=ppo", "env=cartpole", "algo.clip_range=0"], "algo.clip_range=0.0 must be > 0"),
    (["algo=a3c", "env=cartpole", "algo.num_envs=4"], "each A3C worker steps one env"),
    (["algo=td3", "env=pendulum", "env.normalize_reward=true"], "allowed with: a2c, ppo"),
    (["algo=a3c", "env=cartpole", "algo.num_envs=1", "algo.return_norm=true"], "algo.return_norm=true is not "
     "supported with algo=a3c"),
    (["algo=ppo", "env=pendulum", "algo.return_norm=true", "env.normalize_reward=true"], "pick one"),
    (["env=gym", "env.id=tests.crashing_env:ImageObs-v0"], "observations of shape (64, 64, 3) (uint8) are not supported"),
    (["algo=td3", "env=gym", "env.id=tests.crashing_env:UnboundedPendulum-v0"], "has an action space without finite bounds"),
    (["algo=ppo", "env=gym", "env.id=tests.crashing_env:UnboundedPendulum-v0"], "algo=ppo scales and clips its actions"),
])
def test_validation_one_line_errors(compose_cfg, overrides, needle):
    cfg = compose_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_a_tuned_path_is_refused_with_what_to_do():
    """A study writes tuned_<algo>_<env>.yaml; passing that path says where the file must go and under what name."""
    from rlbase.runtime.validate import validate_tuned

    with pytest.raises(ConfigError) as e:
        validate_tuned({"algo": "ppo", "env": "hopper", "tuned": "runs/tune/x/tuned_ppo_hopper.yaml"})
    msg = str(e.value)
    assert "tuned= takes a name in rlbase/conf/tuned/, not a path" in msg and "tuned/ppo_hopper_mine.yaml and pass tuned=ppo_hopper_mine" in msg
    assert "allowed for algo=ppo env=hopper: ppo_hopper" in msg
    with pytest.raises(ConfigError, match="its name says sac_hopper, not this run's pair algo=ppo env=hopper"):
        validate_tuned({"algo": "ppo", "env": "hopper", "tuned": "runs/t/tuned_sac_hopper.yaml"})  # another pair's
    with pytest.raises(ConfigError, match="pass the name without .yaml: tuned=ppo_hopper$"):
        validate_tuned({"algo": "ppo", "env": "hopper", "tuned": "ppo_hopper.yaml"})


@pytest.mark.parametrize("args, needle", [
    (["algo=nope"], "unknown algo option 'nope'; allowed: "),
    (["env=pendulum"], "algo=dqn needs discrete actions"),
    (["algo.gamma=2"], "algo.gamma=2"),
    (["algo.lr=abc"], "algo.lr=abc: Value 'abc' of type 'str' could not be converted to Float"),
    (["algo.lrr=0.1"], "Key 'lrr' not in 'DQNConfig'; allowed keys there: amsgrad, batch_size"),
    (["+algo.new_key=1"], "algo.new_key is not a setting of algo (DQNConfig); allowed: "),
    (["env=nope"], "unknown env option 'nope'; allowed: acrobot, ant, cartpole"),
    (["env=gym", "env.id=Hopper"], "is not a registered gymnasium id"),
    (["algo=td3", "env=pendulum", "algo.buffer_size=-3"], "algo.buffer_size=-3 must be a positive integer"),
    (["-m", "seed=0,1", "algo.tau=x"], "algo.tau=x: Value 'x' of type 'str' could not be converted to Float"),
    (["env=gym"], "env.id must be set (it has no default); env=gym needs a gymnasium id"),
    (["seed=0,1"], "Ambiguous value for argument 'seed=0,1': to sweep over these values add --multirun (-m)"),
    (["+totl_steps=500"], "totl_steps is not a setting of the run config"),
    (["+env.kwargs.foo=1"], "env.kwargs for CartPole-v1: CartPoleEnv.__init__() got an unexpected keyword argument 'foo'"),
    (["tuned=dqn_cartpol"], "tuned=dqn_cartpol: there is no conf/tuned/dqn_cartpol.yaml; allowed for algo=dqn env=cartpole: "
                            "dqn_cartpole"),
    (["algo=ppo", "env=hopper", "tuned=ppo_halfcheetah_zoo"],
     "tuned=ppo_halfcheetah_zoo holds another pair's values than algo=ppo env=hopper; allowed for algo=ppo env=hopper: "
     "ppo_hopper"),
])
def test_train_refuses_bad_input_before_work(tmp_path, args, needle):
    run_dir = tmp_path / "run"
    proc = run_train(*args, run_dir=run_dir, check=False, timeout=120)
    assert proc.returncode == 2
    err_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and needle in err_lines[0], proc.stderr
    assert not run_dir.exists()  # no run directory left behind


def test_scientific_step_counts_accepted(tmp_path):
    run_dir = tmp_path / "run"
    run_train("total_steps=3e2", "eval_every=3e2", "eval_episodes=1", run_dir=run_dir, timeout=120)
    assert Path(run_dir / "done").exists()
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.total_steps == 300


def _schemas():
    import importlib

    from rlbase.conf.schema import EvalConfig, HardwareConfig, RunConfig
    from rlbase.core.logger import LoggerConfig
    from rlbase.data import DatasetConfig
    from rlbase.envs import EnvConfig

    algo = [importlib.import_module(m).Config for m in dict.fromkeys(algos.ALGOS.values())]
    return [*algo, RunConfig, HardwareConfig, EvalConfig, LoggerConfig, EnvConfig, DatasetConfig]


@pytest.mark.parametrize("schema", _schemas(), ids=lambda s: s.__name__)
def test_every_numeric_setting_declares_what_it_allows(schema):
    import dataclasses

    from rlbase.core import settings

    numeric = [f for f in dataclasses.fields(schema) if f.type in ("int", "float", "Optional[int]", "Optional[float]")]
    undeclared = [f.name for f in numeric if settings.allowed(f) is None]
    assert not undeclared, f"{schema.__name__}: declare the allowed values of {undeclared} (algos/common/settings.py)"
    # each default is inside what it declares
    for f in numeric:
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None and default != "???":
            assert settings.allowed(f).ok(default), (schema.__name__, f.name, default)


def test_offline_configs_have_no_online_settings():
    for name in algos.ALGOS:
        mod = algos.get(name)
        if getattr(mod, "OFFLINE", False):
            keys = set(OmegaConf.structured(mod.Config).keys())
            assert not keys & {"buffer_size", "random_steps", "learning_starts", "train_every", "gradient_steps"}, name


@pytest.mark.parametrize("override, needle", [
    ("algo.expectile=1.0", "algo.expectile=1.0 is out of range; allowed: 0 < expectile < 1"),
    ("algo.beta=-1", "algo.beta=-1.0 must be >= 0"),
    ("algo.actor_lr=0", "algo.actor_lr=0.0 must be > 0"),
    ("eval_episodes=0", "eval_episodes=0 must be a positive integer"),
    ("hardware.vector=fork", "hardware.vector=fork is not supported; allowed: sync, async"),
    ("env.obs_clip=-10", "env.obs_clip=-10.0 must be >= 0"),
])
def test_declared_ranges_give_one_line(compose_cfg, override, needle):
    cfg = compose_cfg("algo=iql", "env=pendulum", "dataset.path=x.npz", override)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value) == needle


def test_a_tuned_evaluation_schedule_that_misses_a_short_budget_is_said(compose_cfg):
    """PPO Hopper's tuned eval_every=50000 at total_steps=20000 evaluates at the end only: one line says so (the
    schedule is kept); a value from the command line says nothing."""
    from rlbase.runtime.validate import fit_schedule

    cfg = compose_cfg("algo=ppo", "env=hopper", "total_steps=20000")
    notes = fit_schedule(cfg, {"algo", "env", "total_steps"})
    assert cfg.eval_every == 50000 and len(notes) == 1 and "evaluates at its end only" in notes[0]
    cfg = compose_cfg("algo=ppo", "env=hopper", "total_steps=20000", "eval_every=20000")
    assert fit_schedule(cfg, {"algo", "env", "total_steps", "eval_every"}) == [] and cfg.eval_every == 20000
    cfg = compose_cfg("algo=ppo", "env=hopper")  # the full budget: unchanged
    assert fit_schedule(cfg, {"algo", "env"}) == [] and cfg.eval_every == 50000
