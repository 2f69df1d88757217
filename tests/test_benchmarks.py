"""docs/benchmarks.md from pre-registered protocols: the right verdict word for each case (above, matches, not
resolved, queued), never above/below with 3 seeds against 3, the protocol's window as the per-seed statistic, and
every row naming its data files."""

import json

import numpy as np
import pytest
import yaml

from rlbase.report import benchmarks

STEPS = list(range(10, 101, 10))  # ten evaluations; the window below takes the last five (60-100)
WINDOW = {"first_step": 60, "last_step": 100, "evaluations": 5, "margin": 0.05, "max_step": 100}


def curve(level, rng, spread):
    """A rising curve that sits at about ``level`` over the window."""
    return [(s, level * min(1.0, s / 60) + rng.normal(0, spread)) for s in STEPS]


def write_protocol(root, name, seeds, entries, done, ours, window=True):
    """A protocol directory as `scripts/protocol.py export` leaves it: protocol.yaml, per-seed CSVs of the
    finished runs, runs.json. ``ours[entry]`` = (level, spread); ``done[entry]`` = the seeds finished."""
    d = root / "benchmarks" / name
    d.mkdir(parents=True)
    spec = {"name": name, "written": "2026-12-06", "purpose": "test", "seeds": seeds, "common": ["logger=none"],
            "entries": [{"name": e, "overrides": [f"algo={e.split('-')[0]}", f"env={e.split('-')[1]}"]}
                        for e in entries],
            "evaluation": "every 10 steps", "statistic": "mean over the last five evaluations",
            "anchors": [{"source": "src", "files": "benchmarks/anchors/src/{td3,ddpg,sac}-{hopper,walker2d}.csv",
                         "version": "v9"}]}
    if window:
        spec["statistic_window"] = WINDOW
    (d / "protocol.yaml").write_text(yaml.safe_dump(spec))
    manifest, rng = {}, np.random.default_rng(sum(map(ord, name)))
    for e in entries:
        for s in seeds:
            finished = s in done[e]
            manifest[f"{e}-seed{s}"] = {"entry": e, "seed": s, "status": "done" if finished else "partial",
                                        "last_step": 100 if finished else 40, "commits": ["f8a52e1abc"]}
            if finished:
                level, spread = ours[e]
                rows = "".join(f"{st},{r:.4f},1.0\n" for st, r in curve(level, rng, spread))
                (d / f"{e}-seed{s}.csv").write_text("step,return_mean,return_std\n" + rows)
    (d / "runs.json").write_text(json.dumps(manifest))


def write_anchor(root, name, n_seeds, level, spread, seed=0):
    d = root / "benchmarks" / "anchors" / "src"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = "".join(f"{k},{st},{r:.4f}\n" for k in range(n_seeds) for st, r in curve(level, rng, spread))
    (d / f"{name}.csv").write_text("seed,step,return\n" + rows)


def table(text):
    """(algo, task, protocol) -> the headline table's cells."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("algo", "---"):
            out[(cells[0], cells[1].split(" ")[0], cells[6])] = cells
    return out


@pytest.fixture
def report(tmp_path, monkeypatch):
    five = [1, 2, 3, 4, 5]
    write_protocol(tmp_path, "five", five, ["td3-hopper", "ddpg-hopper", "sac-hopper", "td3-walker2d"],
                   done={"td3-hopper": five, "ddpg-hopper": five, "sac-hopper": five, "td3-walker2d": [1, 2]},
                   ours={"td3-hopper": (3000, 20), "ddpg-hopper": (1000, 600), "sac-hopper": (2000, 2),
                         "td3-walker2d": (500, 10)})
    write_anchor(tmp_path, "td3-hopper", 10, 1000, 20, seed=1)      # far below ours, 5 vs 10 seeds: above
    write_anchor(tmp_path, "ddpg-hopper", 10, 1100, 600, seed=2)    # wide spreads both sides: not resolved
    write_anchor(tmp_path, "sac-hopper", 10, 2000, 2, seed=3)       # level and tight: matches (margin 100)
    write_anchor(tmp_path, "td3-walker2d", 10, 800, 10, seed=4)     # 2 of 5 seeds finished: queued
    # a second protocol with 3 seeds, read through the name registry rather than the file's statistic_window
    write_protocol(tmp_path, "three", [7, 8, 9], ["ddpg-walker2d"], done={"ddpg-walker2d": [7, 8, 9]},
                   ours={"ddpg-walker2d": (5000, 10)}, window=False)
    write_anchor(tmp_path, "ddpg-walker2d", 3, 100, 10, seed=5)     # 50x apart, but 3 vs 3: never resolved
    monkeypatch.setitem(benchmarks.STATISTICS, "three", benchmarks.Statistic(**WINDOW))
    (tmp_path / "benchmarks" / "other").mkdir()
    (tmp_path / "benchmarks" / "other" / "summary.md").write_text("# a check that reports itself\n")
    out = tmp_path / "docs" / "benchmarks.md"
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    return out.read_text()


def test_verdict_words(report):
    rows = table(report)
    assert rows[("TD3", "Hopper", "five")][5] == "**above**"
    assert rows[("DDPG", "Hopper", "five")][5] == "**not resolved**"
    assert rows[("SAC", "Hopper", "five")][5] == "**matches**"
    queued = rows[("TD3", "Walker2d", "five")]
    assert queued[2] == "queued: 2/5 finished" and queued[4] == "—" and "queued" in queued[5]
    assert "n=10, src curves, v9 tasks" in queued[3]  # the anchor's numbers are shown
    assert not any(w in queued[5] for w in ("above", "below", "matches", "not resolved"))
    # the difference cell carries the test and its smallest attainable p (5 vs 10: 1/3003)
    above = rows[("TD3", "Hopper", "five")]
    assert "n=5" in above[2] and "permutation p=" in above[4] and "min p 0.00033" in above[4]


def test_three_seeds_against_three_is_never_above_or_below(report):
    row = table(report)[("DDPG", "Walker2d", "three")]
    assert row[5] == "**not resolved**"
    assert "min p 0.1" in row[4] and "n=3" in row[2] and "n=3" in row[3]
    for cells in table(report).values():  # and no 3-vs-3 row anywhere says above/below
        if "n=3" in cells[2] and "n=3" in cells[3]:
            assert "above" not in cells[5] and "below" not in cells[5]


def test_every_row_names_its_files_and_other_checks_are_linked(report):
    data = report.split("## Data behind each row")[1]
    assert "`benchmarks/five/td3-hopper-seed{1,2,3,4,5}.csv`" in data
    assert "`benchmarks/anchors/src/td3-hopper.csv`" in data and "`benchmarks/five/runs.json`" in data
    assert "`benchmarks/five/td3-walker2d-seed{1,2}.csv`" in data  # the queued row: its finished seeds only
    assert "f8a52e1" in data
    assert "[other](../benchmarks/other/summary.md)" in report
    assert "python scripts/benchmarks.py" in report
    # the secondary line is descriptive: the max of the seed-mean curve for both sides, no verdict word
    lines = [ln for ln in report.split("Secondary")[1].split("Family-wise")[0].splitlines() if ln.startswith("- ")]
    assert len(lines) == 5 and all("at step" in ln for ln in lines)
    # the final evaluation of the window, both sides, on finished rows only (the queued TD3 Walker2d has none)
    finals = [ln for ln in lines if "final evaluation: ours" in ln]
    assert len(finals) == 4 and not any("TD3 Walker2d" in ln for ln in finals)
    assert all(f"at step {WINDOW['last_step']:,}" in ln and "n=" in ln for ln in finals)
    assert not any(w in ln for ln in lines for w in ("above", "below", "matches", "resolved"))


def test_window_is_the_protocols_and_counts_its_evaluations():
    stat = benchmarks.Statistic(**WINDOW)
    pts = [(s, float(s)) for s in STEPS]
    assert stat.per_seed(pts, "x") == pytest.approx(80.0)  # mean of 60, 70, 80, 90, 100
    with pytest.raises(ValueError, match="4 evaluations"):
        stat.per_seed(pts[:-1], "x")


def test_offpolicy_1m_statistic_on_the_real_anchor_files():
    """The TD3 paper's curves, last ten evaluations (955k-1M) averaged per seed, then over seeds, give the TD3 row
    of the paper's Table 2 (benchmarks/anchors/td3_paper/SOURCE.md): Hopper 3304.75, Walker2d 4565.24."""
    from rlbase.report import protocol

    spec = protocol.load(benchmarks.ROOT / "benchmarks" / "offpolicy_1m" / "protocol.yaml")
    rows = benchmarks.rows_of(spec, benchmarks.STATISTICS["offpolicy_1m"], benchmarks.ROOT)
    paper = {r.task: r for r in rows if r.anchor.startswith("TD3 paper")}
    assert sorted(paper) == ["hopper", "walker2d"] and all(r.algo == "td3" for r in paper.values())
    assert np.mean(list(paper["hopper"].theirs.values())) == pytest.approx(3304.75, abs=0.01)
    assert np.mean(list(paper["walker2d"].theirs.values())) == pytest.approx(4565.24, abs=0.01)
    assert paper["hopper"].their_max == (970_000, pytest.approx(3564.07, abs=0.01))  # Table 1
    # DDPG is compared with Tianshou's curves only (the TD3 paper published no DDPG curves), Table 1 beside it
    ddpg = [r for r in rows if r.algo == "ddpg"]
    assert {r.anchor for r in ddpg} == {"Tianshou curves, v3 tasks"} and len(ddpg) == 2
    assert any("ourddpg" in label for r in ddpg for label, _ in r.tables)
    # the paper's table sits beside the paper's curves; Tianshou's TD3 row shows Tianshou's own maximum only
    tianshou_td3 = [r for r in rows if r.algo == "td3" and r.anchor.startswith("Tianshou")]
    assert len(tianshou_td3) == 2 and all(r.tables == [] and r.table_files == [] for r in tianshou_td3)
    assert [label for label, _ in paper["hopper"].tables] == ["TD3 paper table1 td3"]


def test_a_single_number_anchor_gets_where_it_falls_and_no_verdict_word(tmp_path):
    """RL-Zoo publishes one trained agent's mean per task: the page places that number against our seeds' interval
    and counts the seeds that reach it; no difference interval, no verdict word; unfinished entries are queued."""
    d = tmp_path / "benchmarks" / "zoo"
    d.mkdir(parents=True)
    seeds = [1, 2, 3, 4, 5]
    entries = ["dqn-cartpole", "dqn-acrobot", "dqn-mountaincar"]
    spec = {"name": "zoo", "written": "2026-12-06", "purpose": "test", "seeds": seeds, "common": ["logger=none"],
            "entries": [{"name": e, "overrides": ["algo=dqn"]} for e in entries], "evaluation": "greedy",
            "statistic": "final evaluation", "final_steps": {e: 100 for e in entries},
            "anchors": [{"source": "rl_zoo", "table": "benchmarks/anchors/rl_zoo/dqn.csv",
                         "rows": {"dqn-cartpole": "CartPole-v1", "dqn-acrobot": "Acrobot-v1",
                                  "dqn-mountaincar": "MountainCar-v0"}}]}
    (d / "protocol.yaml").write_text(yaml.safe_dump(spec))
    # the value at the final step (100) is a dip between higher ones, and an evaluation after it exists: reading the
    # last or the best evaluation instead of the final step's would change every count below
    finals = {"dqn-cartpole": [500, 500, 480, 500, 500], "dqn-acrobot": [-100, -97, -103, -99, -78]}
    around = {"dqn-cartpole": (300, 500, 500), "dqn-acrobot": (-300, -70, -60)}  # steps 50, 75 and 125
    manifest = {}
    for e in entries:
        for k, s in enumerate(seeds):
            done = e in finals
            manifest[f"{e}-seed{s}"] = {"status": "done" if done else "partial", "commits": ["abc1234def"]}
            if done:
                points = [(50, around[e][0]), (75, around[e][1]), (100, finals[e][k]), (125, around[e][2])]
                rows = "".join(f"{st},{r:.1f},1.0\n" for st, r in points)
                (d / f"{e}-seed{s}.csv").write_text("step,return_mean,return_std\n" + rows)
    (d / "runs.json").write_text(json.dumps(manifest))
    z = tmp_path / "benchmarks" / "anchors" / "rl_zoo"
    z.mkdir(parents=True)
    (z / "dqn.csv").write_text("task,mean,std\nCartPole-v1,500.0,0.0\nAcrobot-v1,-76.639,11.752\n"
                               "MountainCar-v0,-100.849,9.925\n")
    out = tmp_path / "docs" / "benchmarks.md"
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    rows = {line.split("|")[2].strip().split(" ")[0]: line for line in text.splitlines()
            if line.startswith("| DQN |")}
    assert "**inside our interval**" in rows["CartPole-v1"] and "496 [485, 507], n=5" in rows["CartPole-v1"]
    assert "5 of 5 within 5% (475 or more); 4 at 500 or more" in rows["CartPole-v1"]
    # Acrobot: -76.639 against -95.4 [-107, -84]; one seed (-78) within 5% of it (-80.47 or more), none at it
    assert "**above our interval**" in rows["Acrobot-v1"] and "1 of 5 within 5% (-80.471 or more); 0 at" in rows["Acrobot-v1"]
    assert "queued: 0/5 finished" in rows["MountainCar-v0"]
    assert not any(w in row for row in rows.values() for w in ("**matches**", "**above**", "**below**", "resolved"))
    assert "`benchmarks/zoo/dqn-cartpole-seed{1,2,3,4,5}.csv`" in text and "`abc1234`" in text
    assert "- dqn-acrobot: highest point of the mean curve -70.0 at step 75; last three -155.1" in text  # up to step 100
    # curves: the two entries with finished seeds, the published number drawn as a line; none for the queued one
    assert sorted(p.name for p in (tmp_path / "docs" / "benchmarks").glob("*.png")) == \
        ["zoo-dqn-acrobot.png", "zoo-dqn-cartpole.png"]
    assert "](benchmarks/zoo-dqn-cartpole.png)" in text.split("## Curves")[1]
    # a pre-registered side by side with SB3 (SB3_SIDE.md) is listed, and links its report once it exists
    (d / "SB3_SIDE.md").write_text("pre-registered\n")
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    assert "- **zoo beside Stable-Baselines3** on the same seeds (pre-registered: [SB3_SIDE.md](../benchmarks/zoo/" \
           "SB3_SIDE.md)): not run yet" in out.read_text()
    (d / "sb3" / "zoo_case" / "sb3" / "seed7").mkdir(parents=True)  # a finished SB3 job, no report yet
    (d / "sb3" / "zoo_case" / "sb3" / "seed7" / "done").write_text("")
    (d / "sb3" / "zoo_case" / "sb3" / "seed8").mkdir()  # an unfinished one: not counted
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    assert "SB3_SIDE.md)): 1 SB3 run(s) finished so far (`zoo_case` seed 7); no comparison on this page until its report" \
        in out.read_text()
    (d / "sb3" / "report.md").write_text("| case |\n")
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    assert "[report](../benchmarks/zoo/sb3/report.md)" in out.read_text()
    # a protocol that mixes a single-number anchor with a statistic window is refused in one line
    spec["statistic_window"] = {"first_step": 50, "last_step": 100, "evaluations": 3}
    (d / "protocol.yaml").write_text(yaml.safe_dump(spec))
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 2


def test_each_entry_with_a_finished_seed_gets_its_curves(report, tmp_path):
    """The page shows one figure per entry with a finished seed (the queued one with 2 of 5 included), drawn
    beside it in docs/benchmarks/, byte-identical when drawn again; a figure of an entry no longer drawn is removed."""
    figs = tmp_path / "docs" / "benchmarks"
    names = sorted(p.name for p in figs.glob("*.png"))
    assert names == ["five-ddpg-hopper.png", "five-sac-hopper.png", "five-td3-hopper.png", "five-td3-walker2d.png",
                     "three-ddpg-walker2d.png"]
    curves = report.split("## Curves")[1].split("\n## ")[0]
    assert all(f"](benchmarks/{n})" in curves for n in names) and "t+Hall" in curves
    before = {n: (figs / n).read_bytes() for n in names}
    from PIL import Image

    for n in names:  # small: a palette of at most 64 colours (each export that adds a seed commits them again)
        with Image.open(figs / n) as image:
            assert image.mode == "P" and len(image.getcolors(256)) <= 64, (n, image.mode)
    (figs / "five-td3-ant.png").write_bytes(b"stale")  # a protocol's entry no longer drawn: removed
    (figs / "mine.png").write_bytes(b"someone's")  # not a protocol's: kept
    out = tmp_path / "docs" / "benchmarks.md"
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    assert {n: (figs / n).read_bytes() for n in names} == before and not (figs / "five-td3-ant.png").exists()
    assert (figs / "mine.png").exists()
    # --out must be a Markdown file (a directory would put the figures among other files)
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(tmp_path / "docs")]) == 2


def test_final_evaluation_is_the_last_step_every_seed_made():
    curves = {1: [(10, 1.0), (20, 2.0), (30, 3.0)], 2: [(10, 5.0), (20, 6.0)], 3: [(20, 7.0), (30, 8.0), (40, 9.0)]}
    assert benchmarks.final_evaluation(curves, 40) == (20, {1: 2.0, 2: 6.0, 3: 7.0})
    assert benchmarks.final_evaluation({1: [(10, 1.0), (50, 2.0)]}, 40) == (10, {1: 1.0})
    assert benchmarks.final_evaluation({1: [(10, 1.0)], 2: [(20, 2.0)]}, 40) is None
    assert benchmarks.final_evaluation({}, 40) is None


def test_family_wise_section_adjusts_each_protocols_rows_and_changes_no_verdict(report):
    """The 'five' protocol has four rows, three compared (TD3 above with p at its 5-vs-10 floor, DDPG, SAC) and one
    queued, which counts as p = 1; 'three' has one row, so no family line. Holm multiplies the smallest p by 4:
    TD3's 1/3003 stays below 0.05, so its 'above' also holds family-wise, and the headline verdicts are those of
    test_verdict_words."""
    section = report.split("Family-wise, descriptive")[1].split("Comparisons with our own")[0].split("## Data")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("- ")]
    assert len(lines) == 1
    assert lines[0].startswith("- five (3 of 4 rows compared so far): TD3 Hopper vs src curves: p 0.00033 -> 0.0013")
    assert "(above; also family-wise)" in lines[0] and "DDPG Hopper" in lines[0] and "SAC Hopper" in lines[0]
    assert table(report)[("TD3", "Hopper", "five")][5] == "**above**"


def test_a_protocols_comparison_with_our_own_earlier_protocol_is_listed(report, tmp_path):
    """protocol.py compare --against writes compare_<other>.json beside the protocol; the page lists each pair with
    its seed counts against the planned ones: a verdict only when both sides are complete, "interim" before, "stale"
    when the exported curves have changed since the file was written, and a data error for an unreadable file."""
    assert "Comparisons with our own earlier protocols" not in report  # none written yet
    five = {str(s): 1.0 for s in (1, 2, 3, 4, 5)}
    pairs = [{"a": "td3-hopper", "b": "ddpg-walker2d", "values_a": five, "values_b": {"7": 1.5, "8": 2.5, "9": 2.0},
              "verdict": "not resolved", "text": "-0.5 [-3, +2] (Welch 95%; permutation p=0.7)", "p_holm": 0.9},
             {"a": "td3-walker2d", "b": "ddpg-walker2d", "values_a": {"1": 1.0, "2": 2.0},
              "values_b": {"7": 1.5, "8": 2.5, "9": 2.0}, "verdict": "below", "text": "-9 [-12, -6] (Welch 95%)"},
             {"a": "td3-hopper", "b": "ddpg-walker2d", "values_a": {"1": 1.0, "2": 2.0},
              "values_b": {"7": 1.5, "8": 2.5, "9": 2.0}, "verdict": "below", "text": "-9 [-12, -6]"},
             {"a": "td3-walker2d", "b": "nothing", "values_a": {"1": 1.0, "2": 2.0}, "values_b": {},
              "verdict": "not measured (2 and 0 finished seeds)"}]
    (tmp_path / "benchmarks" / "five" / "compare_three.json").write_text(json.dumps({"against": "three", "pairs": pairs}))
    (tmp_path / "benchmarks" / "five" / "compare_zbad.json").write_text("[]")
    out = tmp_path / "docs" / "again.md"
    assert benchmarks.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    section = out.read_text().split("Comparisons with our own earlier protocols")[1].split("## Data behind")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("- ")]
    assert lines[0].startswith("- five `td3-hopper` minus three `ddpg-walker2d` (5/5 against 3/3 seeds): -0.5 [-3, +2]")
    assert "-> **not resolved** (on its own p; Holm over the file's pairs p 0.9)" in lines[0]
    assert "`benchmarks/five/compare_three.json`" in lines[0]
    assert "(2/5 against 3/3 seeds): -9 [-12, -6] (Welch 95%) -> interim 2/5, no verdict" in lines[1]
    assert "below" not in lines[1].split("->")[1]
    assert "stale (5 and 3 seeds exported now; rerun the command)" in lines[2] and "below" not in lines[2]
    assert "(2/5 against 0/3 seeds): not measured" in lines[3]
    assert lines[4].startswith("- five: data error in `benchmarks/five/compare_zbad.json`")


def test_our_task_names_the_env_kwargs_a_protocol_sets():
    entry = {"overrides": ["algo=td3", "env=walker2d", "+env.kwargs.xml_file=walker2d.xml"]}
    assert benchmarks.our_task(entry, ["logger=none"], "walker2d") == "Walker2d-v5, xml_file=walker2d.xml"
    ant = {"overrides": ["env=ant", "+env.kwargs.include_cfrc_ext_in_observation=false",
                         "+env.kwargs.contact_cost_weight=0.0", "+env.kwargs.contact_cost_weight=0.5"]}  # last wins
    assert benchmarks.our_task(ant, [], "ant") == "Ant-v5, include_cfrc_ext_in_observation=false, contact_cost_weight=0.5"
    assert benchmarks.our_task({"overrides": ["env=hopper"]}, [], "hopper") == "Hopper-v5"
