"""The loop-kind registry: four kinds, an algorithm's LOOP names one, a run's ``loop=`` overrides it."""

import pytest
from omegaconf import OmegaConf

from rlbase import algos, loops
from rlbase.core.agent import PROTOCOLS
from rlbase.loops import asynchronous


def test_registry_lists_four_kinds_each_with_make_env_and_loop():
    assert list(loops.KINDS) == ["off_policy", "on_policy", "offline", "asynchronous"]
    for name, kind in loops.KINDS.items():
        assert callable(kind.make_env) and callable(kind.loop), name
        assert loops.get(name) is kind.loop
    assert set(PROTOCOLS) == set(loops.KINDS)  # every kind writes down what it calls on its agents
    for name in algos.ALGOS:
        assert algos.get(name).LOOP in loops.KINDS, name


def test_a3c_runs_on_the_asynchronous_kind():
    a3c = algos.get("a3c")
    assert a3c.LOOP == "asynchronous"
    assert loops.kind_of(a3c, OmegaConf.create({"seed": 0})) == "asynchronous"
    assert loops.get("asynchronous") is asynchronous.loop


def test_kind_of_honours_the_override_and_refuses_an_unknown_kind_in_one_line():
    dqn = algos.get("dqn")
    assert loops.kind_of(dqn, OmegaConf.create({"seed": 0})) == "off_policy"  # no `loop` key: the algorithm's
    assert loops.kind_of(dqn, OmegaConf.create({"loop": None})) == "off_policy"  # null: the algorithm's
    assert loops.kind_of(dqn, OmegaConf.create({"loop": "off_policy"})) == "off_policy"
    with pytest.raises(ValueError, match="loop=asynchronous cannot drive algo=dqn.*allowed for it: off_policy$"):
        loops.kind_of(dqn, OmegaConf.create({"loop": "asynchronous"}))  # its settings are not that loop's
    struct = OmegaConf.create({"seed": 0})
    OmegaConf.set_struct(struct, True)  # a composed run config without the key
    assert loops.kind_of(dqn, struct) == "off_policy"
    with pytest.raises(ValueError) as e:
        loops.kind_of(dqn, OmegaConf.create({"loop": "several_seeds"}))
    msg = str(e.value)
    assert "\n" not in msg and "loop=several_seeds" in msg
    assert msg.endswith("allowed: off_policy, on_policy, offline, asynchronous")
    with pytest.raises(ValueError, match="allowed: off_policy"):
        loops.get("several_seeds")


def test_a_loop_override_is_checked_before_the_run(tmp_path):
    """``loop=<kind>`` names a registered kind whose settings the algorithm has; anything else is one line, exit 2."""
    from tests.conftest import run_train

    for args, needle in ((["algo=dqn", "loop=nope"], "loop=nope is not a loop kind; allowed: off_policy"),
                         (["algo=a2c", "loop=off_policy"], "loop=off_policy cannot drive algo=a2c")):
        proc = run_train(*args, "total_steps=1000", run_dir=tmp_path / "run", check=False)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr
        assert not (tmp_path / "run").exists()
