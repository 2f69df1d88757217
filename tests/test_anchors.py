"""The committed anchor data reproduce the numbers their authors published, and the loader's helpers behave."""

import numpy as np
import pytest

from rlbase.report.anchors import at_step, curves, final, max_of_mean, path, seed_mean_curve


def test_tianshou_ppo_hopper_reproduces_readme_table():
    """Tianshou's examples/mujoco/README.md (commit 39acf209), PPO, Hopper, 1M column: 2609.3 +- 700.8."""
    c = curves("tianshou", "ppo", "Hopper-v3")
    assert sorted(c) == list(range(10))
    assert all(len(points) == 101 for points in c.values())  # step 0, then every 30,720 steps to 3,072,000
    step, value = max_of_mean(c, max_step=1_000_000)
    assert step == 890_880
    assert value == pytest.approx(2609.3, abs=0.05)
    # Their "+-" is the std over seeds (numpy's default, ddof=0) at that step.
    assert np.std(list(at_step(c, step).values())) == pytest.approx(700.8, abs=0.05)


def test_td3_paper_hopper_reproduces_table1():
    """TD3 paper, Table 1, TD3 on Hopper-v1: 3564.07 +- 114.74."""
    c = curves("td3_paper", "td3", "hopper")
    assert len(c) == 10
    step, value = max_of_mean(c)
    assert (step, round(value, 2)) == (970_000, 3564.07)
    assert round(float(np.std(list(at_step(c, step).values()))), 2) == 114.74


def test_helpers_on_uneven_steps():
    c = {0: [(0, 1.0), (10, 3.0), (20, 5.0)], 1: [(0, 3.0), (15, 9.0), (20, 7.0)]}
    assert seed_mean_curve(c) == [(0, 2.0), (20, 6.0)]  # step 10 and 15 are not shared by both seeds
    assert max_of_mean(c) == (20, 6.0)
    assert max_of_mean(c, max_step=19) == (0, 2.0)
    assert at_step(c, 16) == {0: 3.0, 1: 9.0}
    assert at_step(c, -1) == {}
    assert final(c) == {0: 5.0, 1: 7.0}
    with pytest.raises(ValueError):
        seed_mean_curve({0: [(0, 1.0)], 1: [(5, 1.0)]})


def test_missing_file_names_what_exists():
    assert path("tianshou", "PPO", "Walker2d-v3").name == "ppo-walker2d.csv"
    with pytest.raises(FileNotFoundError, match="ppo-hopper"):
        curves("tianshou", "ppo", "Swimmer")
