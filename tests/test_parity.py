"""scripts/parity.py's statistics and report on made-up runs (SB3 itself is not needed)."""

import json

import pytest

from rlbase.report import parity


def _write(out, case, lib, seed, finals):
    d = out / case / lib / f"seed{seed}"
    d.mkdir(parents=True)
    rows = [{"step": s, "eval/return_mean": v} for s, v in finals.items()]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "done").write_text("")


def test_report_verdicts(tmp_path):
    for s in range(5):  # sac_hopper: ours clearly below; td3_hopper: alike
        _write(tmp_path, "sac_hopper", "ours", s, {20000: 100 + s, 25000: 200 + s, 30000: 300 + s})
        _write(tmp_path, "sac_hopper", "sb3", s, {20000: 100 + s, 25000: 200 + s, 30000: 900 + s})
        _write(tmp_path, "td3_hopper", "ours", s, {20000: 500 + 10 * s, 25000: 500, 30000: 500 + 10 * s})
        _write(tmp_path, "td3_hopper", "sb3", s, {20000: 505 + 10 * s, 25000: 500, 30000: 495 + 10 * s})
    parity.report(tmp_path, ["sac_hopper", "td3_hopper"])
    rows = {(r["case"], r["budget"]): r for r in json.loads((tmp_path / "report.json").read_text())}
    assert rows[("sac_hopper", 30000)]["verdict"] == "ours worse"
    assert rows[("td3_hopper", 30000)]["verdict"] == "no difference resolved"
    assert rows[("sac_hopper", 30000)]["ours"]["iqm"] == 302.0
    assert "| sac_hopper | 30000 | 5 |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_ablation_case_reads_the_base_case_sb3_runs(tmp_path):
    for s in range(3):
        _write(tmp_path, "sac_halfcheetah_eps", "ours", s, {30000: 1000.0 + s})
        _write(tmp_path, "sac_halfcheetah", "sb3", s, {30000: 1000.0 - s})
    parity.report(tmp_path, ["sac_halfcheetah_eps"])
    row = [r for r in json.loads((tmp_path / "report.json").read_text()) if r["budget"] == 30000][0]
    assert len(row["sb3"]["values"]) == 3


def test_seeds_and_the_verdict_of_the_stats_module():
    from rlbase.report import stats

    assert parity.parse_seeds("0-2,5") == [0, 1, 2, 5]
    # 5 vs 5 far apart: resolved; 3 vs 3 cannot be (the exact permutation test's smallest p is 0.10)
    assert parity.verdict(stats.diff([1, 2, 3, 2, 1], [11, 12, 13, 12, 11])) == "ours worse"
    assert parity.verdict(stats.diff([11, 12, 13, 12, 11], [1, 2, 3, 2, 1])) == "ours better"
    assert parity.verdict(stats.diff([1, 2, 3], [11, 12, 13])) == "no difference resolved"
    assert all(c.name in parity.CASES for c in parity.CASES.values())


def test_every_case_maps_to_sb3_and_refusals_are_one_line():
    """Every case's SB3 side is runnable as configured (checked without SB3); a setting SB3 lacks is named."""
    for c in parity.CASES.values():
        if not c.name_suffix:
            assert parity.parity_unsupported(parity.compose(c, 0)) is None, c.name
    cfg = parity.compose_overrides(["algo=td3", "env=pendulum", "algo.random_steps=100", "algo.learning_starts=200"])
    assert parity.sb3_unsupported(cfg) == "SB3 acts at random exactly until learning_starts; set random_steps equal to it"
    cfg = parity.compose_overrides(["algo=ppo", "env=cartpole", "algo.return_norm=true"])
    assert "algo.return_norm" in parity.sb3_unsupported(cfg)
    cfg = parity.compose_overrides(["algo=ppo", "env=hopper"])  # normalised: SB3 can train it (the benchmark does) ...
    assert parity.sb3_unsupported(cfg) is None
    assert "VecNormalize" in parity.parity_unsupported(cfg)  # ... but the harness cannot evaluate it yet
    cfg = parity.compose_overrides(["algo=sac", "env=pendulum", "algo.actor_lr=1e-3", "algo.critic_lr=3e-4"])
    assert parity.sb3_unsupported(cfg).startswith("SB3 uses one learning rate for all networks")
    assert parity.sb3_unsupported(parity.compose_overrides(["algo=cql", "env=pendulum"])) == "no SB3 counterpart for algo cql"
    assert parity.sb3_unsupported(parity.compose_overrides(["algo=ddpg", "env=hopper"])) is None  # SB3's DDPG
    assert parity.sb3_unsupported(parity.compose_overrides(["algo=ddpg", "env=hopper", "algo.critic_action_layer=1"])) == \
        "SB3's DDPG has the action at the critic's input and no weight decay"


def test_td3_and_ddpg_updates_are_sb3s_update_for_update():
    """Given SB3's weights, minibatches and noise, our TD3 and DDPG (one critic, no smoothing, no delay) move every
    network as SB3's TD3 and DDPG do, up to float32 rounding (Walker2d-v5: the 1M protocol's task)."""
    pytest.importorskip("stable_baselines3")  # requirements-bench.txt; not in make install
    for algo in ("td3", "ddpg"):
        updates = parity.td3_update_check("walker2d", updates=4, algo=algo)["updates"]
        for u in updates:
            assert max(u[k] for k in ("actor", "actor_target", "critic", "critic_target")) < 5e-6, (algo, u)
        assert updates[-1]["actor_moved"] > 1e-4  # the actor did move (by about 100x more than the differences)


def test_protocol_cases_run_the_protocols_own_settings():
    """The RL-Zoo DQN cases are read from benchmarks/dqn_zoo/protocol.yaml: each composes to the config the
    protocol's runner gives that entry (seed aside), so the side by side cannot drift from the pre-registered runs."""
    from rlbase.report import protocol

    for name in ("dqn_zoo", "dqn_zoo_lunar"):
        spec = protocol.load(parity.ROOT / "benchmarks" / name / "protocol.yaml")
        for e in spec["entries"]:
            case = parity.CASES[f"{e['name'].replace('-', '_')}_zoo"]
            theirs = parity.compose_overrides([*spec["common"], *e["overrides"], "seed=7"])
            ours = parity.compose(case, 7)
            ours.logger = theirs.logger  # the harness runs logger=none itself
            assert ours == theirs, e["name"]
            assert case.budgets == (spec["final_steps"][e["name"]],) and parity.parity_unsupported(ours) is None
            assert f"benchmarks/{name}/protocol.yaml" in case.aligned
    # the 100k protocol's Hopper and HalfCheetah entries (Walker2d has no SB3 side), compared over its window
    spec = protocol.load(parity.ROOT / "benchmarks" / "offpolicy_100k" / "protocol.yaml")
    names = [e["name"] for e in spec["entries"] if "walker2d" not in e["name"]]
    assert [c.entry for c in parity.CASES.values() if c.name.endswith("_100k")] == names
    for e in spec["entries"]:
        case = parity.CASES.get(f"{e['name'].replace('-', '_')}_100k")
        if case is None:
            continue
        theirs = parity.compose_overrides([*spec["common"], *e["overrides"], "seed=7"])
        ours = parity.compose(case, 7)
        ours.logger = theirs.logger
        assert ours == theirs and case.budgets == (90_000, 95_000, 100_000), e["name"]
        assert parity.parity_unsupported(ours) is None, e["name"]  # SAC's fixed temperature: two learning rates


def test_report_reads_our_side_from_a_protocols_runs(tmp_path):
    """``report --ours-runs <runs root>/<protocol>``: a protocol case's our side is that protocol's own
    ``<entry>-seed<k>`` runs (same overrides), so ours are not run twice; finished runs only."""
    import json

    def fake(d, base, done=True):
        d.mkdir(parents=True)
        rows = [{"step": s, "eval/return_mean": base + s / 1000} for s in (90_000, 95_000, 100_000)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if done:
            (d / "done").write_text("")

    out, runs = tmp_path / "parity", tmp_path / "runs" / "offpolicy_100k"
    for k, s in enumerate((3000, 3001, 3002)):
        fake(out / "td3_hopper_100k" / "sb3" / f"seed{s}", 1000 + 10 * k)
        fake(runs / f"td3-hopper-seed{s}", 2000 + 10 * k, done=s != 3002)
    fake(runs / "td3-halfcheetah-seed3000", 9000)  # another entry's run: not this case's
    parity.report(out, ["td3_hopper_100k"], ours_runs=runs)
    rows = json.loads((out / "report.json").read_text())
    final = next(r for r in rows if r["budget"] == 100_000)
    assert final["ours"]["seeds"] == [3000, 3001] and final["ours"]["values"] == [2100.0, 2110.0]
    assert final["sb3"]["seeds"] == [3000, 3001, 3002] and final["diff"] > 0
    # the protocol's own statistic: each seed's mean over 90k-100k (here 2095 and 2105 for ours)
    window = next(r for r in rows if r["budget"] == "mean 90000-100000")
    assert window["ours"]["values"] == [2095.0, 2105.0] and window["sb3"]["values"] == [1095.0, 1105.0, 1115.0]
    assert "td3_hopper_100k (mean 90000-100000) ours: s3000 2095, s3001 2105" in (out / "report.md").read_text()
    with pytest.raises(SystemExit, match="expected <runs root>/offpolicy_100k"):  # another protocol's runs
        parity.report(out, ["td3_hopper_100k"], ours_runs=tmp_path / "runs" / "dqn_zoo")


def test_report_without_runs_reads_our_side_from_the_protocols_committed_curves(tmp_path):
    """No --ours-runs and no run of ours under --out: a protocol case's our side is the protocol's committed per-seed
    CSVs (its finished runs), so the committed report can be made again from the repository alone; the report says
    where our side came from."""
    import json

    from rlbase.report import protocol

    out = tmp_path / "parity"
    for k, s in enumerate((3000, 3001)):
        d = out / "td3_hopper_100k" / "sb3" / f"seed{s}"
        d.mkdir(parents=True)
        rows = [{"step": t, "eval/return_mean": 100.0 + k} for t in (90_000, 95_000, 100_000)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "done").write_text("")
    parity.report(out, ["td3_hopper_100k"], seeds=[3000, 3001, 3002, 3003, 3004])
    rows = json.loads((out / "report.json").read_text())
    window = next(r for r in rows if r["budget"] == "mean 90000-100000")
    spec = protocol.load(parity.ROOT / "benchmarks" / "offpolicy_100k" / "protocol.yaml")
    committed = protocol.window_values(spec, "td3-hopper")  # the protocol's own statistic, from the same CSVs
    assert window["ours"]["seeds"] == sorted(committed) == [3000, 3001, 3002, 3003, 3004]
    assert window["ours"]["values"] == pytest.approx([committed[s] for s in sorted(committed)])
    assert window["sb3"]["values"] == [100.0, 101.0]
    assert "td3_hopper_100k: benchmarks/offpolicy_100k/td3-hopper-seed<k>.csv (committed" in \
        (out / "report.md").read_text()


def test_hours_starts_only_jobs_a_finished_job_has_timed_to_fit(tmp_path, capsys):
    """run --hours: a case and library with no finished job is not started (nothing to time it by); one whose
    finished jobs' median wall time fits before the deadline is; one that would run past it is not; a finished job
    is never in the way. Bad --hours is refused before any job."""
    import time

    case = parity.CASES["td3_hopper_100k"]
    assert parity.fits(tmp_path, case, "sb3", 3000, None) is None  # no --hours: always
    assert "no finished sb3 job of this case" in parity.fits(tmp_path, case, "sb3", 3000, time.time() + 3600)
    for seed, wall in ((3000, 800.0), (3001, 1000.0), (3002, 5000.0)):
        d = tmp_path / case.name / "sb3" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "done").write_text("")
        (d / "wall_s").write_text(f"{wall}\n")
    assert parity.expected_wall(tmp_path, case, "sb3") == 1000.0  # the median
    assert parity.fits(tmp_path, case, "sb3", 3003, time.time() + 1200) is None
    assert "would run past --hours" in parity.fits(tmp_path, case, "sb3", 3003, time.time() + 900)
    assert parity.fits(tmp_path, case, "sb3", 3001, time.time() + 1) is None  # finished: run_job skips it
    assert "no finished ours job" in parity.fits(tmp_path, case, "ours", 3003, time.time() + 1e6)
    with pytest.raises(SystemExit, match="--hours 0.0: must be > 0"):
        parity.main(["run", "td3_hopper_100k", "--hours", "0", "--out", str(tmp_path)])


def test_a_resumed_jobs_wall_time_counts_all_its_starts(tmp_path, monkeypatch):
    """wall_s, which --hours plans with, is the job's whole time: a job of ours stopped at a checkpoint and resumed
    sums both starts; a job that starts afresh forgets the old starts."""
    import itertools

    clock = itertools.count(0.0, 100.0)  # each time.time() call advances 100 s
    monkeypatch.setattr(parity.time, "time", lambda: next(clock))
    case = parity.CASES["td3_hopper_100k"]
    d = parity._job_dir(tmp_path, case, "ours", 3000)
    calls = []

    def fake_call(cmd, **kw):
        calls.append(cmd)
        d.mkdir(parents=True, exist_ok=True)
        if len(calls) == 1:
            (d / "checkpoint.pt").write_text("")  # stopped part way
            return 143
        (d / "done").write_text("")
        return 0

    monkeypatch.setattr(parity.subprocess, "call", fake_call)
    assert "rc=143" in parity.run_job(tmp_path, case, "ours", 3000)
    assert not (d / "wall_s").exists()
    assert "rc=0" in parity.run_job(tmp_path, case, "ours", 3000)
    assert any(a.startswith("resume=") for a in calls[1])
    assert float((d / "wall_s").read_text()) == 200.0  # two starts of 100 s each


def test_an_unknown_case_is_one_line_naming_the_known_ones():
    for argv in (["report", "no_such_case"], ["_sb3", "no_such_case", "1", "/nonexistent"]):
        with pytest.raises(SystemExit, match="unknown case.*no_such_case; allowed: .*td3_hopper_100k"):
            parity.main(argv)
