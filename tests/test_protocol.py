"""The pre-registered benchmark runner: runs every (entry, seed), skips finished runs, resumes unfinished ones,
exports one curve file per run, and refuses a protocol file that does not state what it must."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from rlbase.core import checkpoint
from rlbase.report import protocol

PROTO = {
    "name": "tiny", "written": "2026-12-06", "purpose": "test", "seeds": [7, 8],
    "common": ["logger=none", "total_steps=1200", "eval_every=600", "eval_episodes=2", "algo.random_steps=200",
               "algo.learning_starts=200", "keep_replay=true"],
    "entries": [{"name": "dqn-cartpole", "overrides": ["algo=dqn", "env=cartpole"]}],
    "evaluation": "every 600 steps, 2 episodes", "statistic": "final",
}


def write(tmp_path, **changes):
    path = tmp_path / "tiny" / "protocol.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**PROTO, **changes}))
    return path


def test_runs_skips_resumes_and_exports(tmp_path):
    spec = protocol.load(write(tmp_path))
    runs = tmp_path / "runs"
    assert protocol.run(spec, workers=2, threads=1, runs_root=runs) == 0
    jobs = protocol.jobs(spec, runs)
    assert [j.key for j in jobs] == ["dqn-cartpole-seed7", "dqn-cartpole-seed8"]
    assert all(protocol.state_of(j) == ("done", 1200) for j in jobs)
    # an unfinished run (here: its done marker gone) is resumed from its checkpoint, a finished one skipped
    (jobs[0].run_dir / checkpoint.DONE).unlink()
    assert protocol.state_of(jobs[0])[0] == "partial"
    # with the threads of this call (--threads), not the start's
    assert protocol.command(jobs[0], 2)[-2:] == [f"resume={jobs[0].run_dir}", "hardware.threads=2"]
    assert protocol.run(spec, workers=2, threads=1, runs_root=runs) == 0
    assert protocol.state_of(jobs[0])[0] == "done"
    written = protocol.export(spec, runs_root=runs)
    assert sorted(p.name for p in written) == ["dqn-cartpole-seed7.csv", "dqn-cartpole-seed8.csv"]
    lines = written[0].read_text().splitlines()
    assert lines[0] == "step,return_mean,return_std" and [int(x.split(",")[0]) for x in lines[1:]] == [600, 1200]
    manifest = json.loads((spec["_path"].parent / "runs.json").read_text())
    assert manifest["dqn-cartpole-seed8"]["status"] == "done" and manifest["dqn-cartpole-seed8"]["commits"]
    assert manifest["dqn-cartpole-seed8"]["steps_per_s"] > 0  # kept for a later machine's queue plan
    assert manifest["dqn-cartpole-seed7"]["threads"] == [1, 1]  # its start's torch threads, then its resume's
    # different seeds, different curves
    assert written[0].read_text() != written[1].read_text()
    # a record exported before threads were kept gets them from its run directory; nothing else of it changes
    del manifest["dqn-cartpole-seed7"]["threads"]
    (spec["_path"].parent / "runs.json").write_text(json.dumps(manifest))
    protocol.export(protocol.load(spec["_path"]), runs_root=runs)
    again = json.loads((spec["_path"].parent / "runs.json").read_text())
    assert again["dqn-cartpole-seed7"] == {**manifest["dqn-cartpole-seed7"], "threads": [1, 1]}


def test_a_committed_run_is_not_run_again_when_its_directory_is_gone(tmp_path, monkeypatch, capsys):
    """A new machine has none of the last one's run directories: a run that the committed runs.json records as
    finished (its curve beside it) is not started again, ``status`` counts it, and ``export`` keeps its record and
    curve byte for byte while it writes the runs that are here. ``--code`` runs another checkout's train.py, from
    that checkout, with its package first on the path; both it and the runs root may be given relative to the
    current directory. A finished run here that differs from the committed one does not replace it."""
    spec = protocol.load(write(tmp_path))
    out_dir = spec["_path"].parent
    record = {"entry": "dqn-cartpole", "seed": 7, "status": "done", "last_step": 1200, "commits": ["abc"]}
    (out_dir / "runs.json").write_text(json.dumps({"dqn-cartpole-seed7": record}))
    curve = "step,return_mean,return_std\n600,20.0000,1.0000\n1200,30.0000,2.0000\n"
    (out_dir / "dqn-cartpole-seed7.csv").write_text(curve)
    runs = tmp_path / "runs"
    jobs = protocol.jobs(spec, runs)
    assert protocol.state_of(jobs[0]) == ("exported", 1200) and protocol.state_of(jobs[1]) == ("new", 0)
    assert "1/2 runs finished" in protocol.status(spec, runs)
    # a recorded run without its curve file is not finished: it runs again
    (out_dir / "dqn-cartpole-seed7.csv").rename(out_dir / "gone.csv")
    assert protocol.state_of(protocol.jobs(spec, runs)[0])[0] == "new"
    (out_dir / "gone.csv").rename(out_dir / "dqn-cartpole-seed7.csv")

    code = tmp_path / "other_checkout"  # a stand-in train.py that reports where and with what it ran
    code.mkdir()
    (code / "train.py").write_text(
        "import os, sys, pathlib\n"
        "d = pathlib.Path([a.split('=', 1)[1] for a in sys.argv if a.startswith('hydra.run.dir=')][0])\n"
        "d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'where.txt').write_text(os.getcwd() + '\\n' + os.environ['PYTHONPATH'].split(os.pathsep)[0])\n")
    monkeypatch.chdir(tmp_path)  # relative --code and runs root: the jobs run elsewhere, the paths still hold
    assert protocol.run(spec, workers=2, threads=1, runs_root=Path("runs"), code=Path("other_checkout")) == 0
    assert not jobs[0].run_dir.exists()  # never started again
    assert (jobs[1].run_dir / "where.txt").read_text().splitlines() == [str(code.resolve())] * 2
    assert "commit unknown: " in (runs / "tiny" / "dqn-cartpole-seed8.log").read_text()  # not a git checkout
    jobs[0].run_dir.mkdir(parents=True)  # a finished run of the committed seed, made again here with another curve
    (jobs[0].run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1200, "eval/return_mean": 99.0}) + "\n")
    checkpoint.mark_done(jobs[0].run_dir)
    protocol.export(spec, runs_root=runs)
    assert "kept the committed dqn-cartpole-seed7" in capsys.readouterr().err
    assert (out_dir / "dqn-cartpole-seed7.csv").read_text() == curve
    manifest = json.loads((out_dir / "runs.json").read_text())
    assert manifest["dqn-cartpole-seed7"] == record and manifest["dqn-cartpole-seed8"]["status"] == "new"
    assert protocol.main(["run", str(spec["_path"]), "--code", str(tmp_path / "nowhere")]) == 2
    assert "--code" in capsys.readouterr().err


def test_an_unfinished_attempt_whose_directory_went_is_recorded_as_lost(tmp_path):
    """A run that runs.json recorded as unfinished, whose run directory a new machine does not have, is not
    silently replaced by the new attempt's record: its start, last step and commits move to ``lost``, and stay
    there as the new attempt goes on and finishes; the attempt that is still here is never called lost."""
    spec = protocol.load(write(tmp_path, seeds=[7]))
    out_dir, runs = spec["_path"].parent, tmp_path / "runs"
    old = {"entry": "dqn-cartpole", "seed": 7, "status": "partial", "last_step": 600, "commits": ["abc"]}
    (out_dir / "runs.json").write_text(json.dumps({"dqn-cartpole-seed7": old}))  # made before start times were kept
    protocol.export(spec, runs_root=runs)
    first = json.loads((out_dir / "runs.json").read_text())["dqn-cartpole-seed7"]
    assert first["status"] == "new" and first["lost"] == [{"last_step": 600, "commits": ["abc"]}]
    assert protocol.run(spec, workers=1, threads=1, runs_root=runs) == 0
    protocol.export(spec, runs_root=runs)
    done = json.loads((out_dir / "runs.json").read_text())["dqn-cartpole-seed7"]
    assert done["status"] == "done" and done["started"] and done["lost"] == first["lost"]
    protocol.export(spec, runs_root=runs)  # the run here is the recorded one: nothing more is lost
    assert json.loads((out_dir / "runs.json").read_text())["dqn-cartpole-seed7"] == done
    # a recorded unfinished attempt with a start time that is not the run here is lost too
    (out_dir / "dqn-cartpole-seed7.csv").unlink()  # (not committed as finished, so the record is rewritten)
    again = {**old, "started": "2026-01-01T00:00:00+0000"}
    (out_dir / "runs.json").write_text(json.dumps({"dqn-cartpole-seed7": again}))
    protocol.export(spec, runs_root=runs)
    record = json.loads((out_dir / "runs.json").read_text())["dqn-cartpole-seed7"]
    assert record["lost"] == [{"started": "2026-01-01T00:00:00+0000", "last_step": 600, "commits": ["abc"]}]


def test_hours_starts_only_the_runs_that_will_finish_in_time(tmp_path, capsys):
    """``--hours``: a run expected to outlast the time left (its entry's rate, here from the committed record of a
    finished seed: 0.1 steps/s, 1200 steps = 3.3 h) is not started and says so; with time enough it starts. An
    entry with no measured rate is not started under --hours; a queue with no time left starts nothing."""
    spec = protocol.load(write(tmp_path))
    out_dir = spec["_path"].parent
    record = {"entry": "dqn-cartpole", "seed": 7, "status": "done", "last_step": 1200, "commits": ["abc"],
              "steps_per_s": 0.1}
    (out_dir / "runs.json").write_text(json.dumps({"dqn-cartpole-seed7": record}))
    (out_dir / "dqn-cartpole-seed7.csv").write_text("step,return_mean,return_std\n1200,30.0,2.0\n")
    code = tmp_path / "other_checkout"
    code.mkdir()
    (code / "train.py").write_text("import sys, pathlib\n"
                                   "d = [a.split('=', 1)[1] for a in sys.argv if a.startswith('hydra.run.dir=')][0]\n"
                                   "pathlib.Path(d).mkdir(parents=True)\n")
    runs = tmp_path / "runs"
    job = protocol.jobs(spec, runs)[1]
    assert protocol.hours_left(job, 0, protocol.measured_rates(spec, protocol.jobs(spec, runs))[0]) == \
        pytest.approx(1200 / 0.1 / 3600)
    assert protocol.run(spec, workers=1, runs_root=runs, code=code, hours=1.0) == 0
    assert "not started: dqn-cartpole-seed8 (needs about 3.3 h" in capsys.readouterr().out
    assert not job.run_dir.exists()
    assert protocol.run(spec, workers=1, runs_root=runs, code=code, hours=4.0) == 0
    assert job.run_dir.is_dir()
    assert "about 3.3 h of one core" in protocol.status(spec, runs)  # status reads the same rates
    assert "runs so far made at: abc (1)" in protocol.status(spec, runs)  # the commit the rest should run (--code)
    assert protocol.main(["run", str(spec["_path"]), "--hours", "0"]) == 2
    other = protocol.load(write(tmp_path / "o", name="other", seeds=[9]))  # no rate of its entry anywhere
    assert protocol.run(other, workers=1, runs_root=runs, code=code, hours=100.0) == 0
    assert "no rate of dqn-cartpole measured yet" in capsys.readouterr().out
    assert not protocol.jobs(other, runs)[0].run_dir.exists()


def test_a_signal_stops_the_queue_and_reaches_every_running_job(tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) to the runner: each running job gets SIGTERM (a run checkpoints on it), no new job starts,
    and the result says which signal stopped it."""
    spec = protocol.load(write(tmp_path, seeds=[1, 2, 3]))
    timers = []

    def command(job, threads, group=None, code=None):  # called inside run(), after its handlers are in place
        if not timers:
            timers.append(threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)))
            timers[0].start()
        return [sys.executable, "-c", "import time; time.sleep(60)"]

    monkeypatch.setattr(protocol, "command", command)
    started = time.monotonic()
    result = protocol.run(spec, workers=2, threads=1, runs_root=tmp_path / "runs")
    timers[0].join()
    assert result.stopped == signal.SIGTERM and time.monotonic() - started < 30
    assert result == 0  # a job stopped by the signal is not a failure
    logs = sorted((tmp_path / "runs" / "tiny").glob("*.log"))
    assert [p.name for p in logs] == ["dqn-cartpole-seed1.log", "dqn-cartpole-seed2.log"]  # seed 3 never started


def test_a_run_is_never_resumed_on_other_code_than_it_started_with(tmp_path, capsys):
    """A half-made run whose provenance says it started at a commit whose code differs from the queue's checkout is
    not resumed (one line names the commit to resume it on; the end of the queue says it again); a new seed
    starts, with a note. A later commit that changes no training file counts as the same code; so does the commit
    itself. A start that made nothing (no checkpoint) is not a run "made at" its commit. Without git: one note."""
    import subprocess

    spec = protocol.load(write(tmp_path))
    code = tmp_path / "checkout"
    code.mkdir()
    (code / "train.py").write_text("import sys, pathlib\n"
                                   "pathlib.Path(__file__).with_name('calls.txt').open('a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                                   "d = [a.split('=', 1)[1] for a in sys.argv if a.startswith('hydra.run.dir=')]\n"
                                   "d and pathlib.Path(d[0]).mkdir(parents=True, exist_ok=True)\n")
    git = ["git", "-C", str(code), "-c", "user.name=t", "-c", "user.email=t@t"]

    def commit(path, text):
        (code / path).write_text(text)
        subprocess.run([*git, "add", path], check=True)
        subprocess.run([*git, "commit", "-qm", path], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    subprocess.run([*git, "init", "-q"], check=True)
    first = commit("train.py", (code / "train.py").read_text())
    second = commit("pyproject.toml", "# another training setting\n")  # a file the training reads: other code
    runs = tmp_path / "runs"
    half, fresh = protocol.jobs(spec, runs)
    half.run_dir.mkdir(parents=True)
    (half.run_dir / checkpoint.NAME).write_bytes(b"")
    (half.run_dir / "provenance.json").write_text(json.dumps({"git": {"commit": first}}))
    fresh.run_dir.mkdir(parents=True)  # a start at yet another commit that made nothing: not a run "made at" it
    (fresh.run_dir / "provenance.json").write_text(json.dumps({"git": {"commit": "e" * 40}}))
    assert protocol.state_of(half)[0] == "partial" and protocol.state_of(fresh)[0] == "new"
    assert protocol.recorded_commits(spec, protocol.jobs(spec, runs)) == {first: 1}
    assert protocol.run(spec, workers=1, runs_root=runs, code=code) == 0
    out = capsys.readouterr().out
    assert f"not resumed: dqn-cartpole-seed7 (started at {first[:7]}; this queue's code {code} is at {second[:7]}" in out
    assert f"--code <a checkout at {first[:7]}> (git worktree add --detach <dir> {first[:7]})" in out
    assert f"tiny's runs so far were made at {first[:7]}; new runs here are made at {second[:7]}" in out
    assert out.strip().splitlines()[-1].endswith("tiny: not resumed (they started on other code): dqn-cartpole-seed7")
    calls = (code / "calls.txt").read_text().splitlines()
    assert len(calls) == 1 and "seed=8" in calls[0]  # only the new seed ran
    assert f"{first[:7]} (1)" in protocol.status(spec, runs)
    # a commit that changes no file the training reads (results, docs) runs the same code: the run resumes
    subprocess.run([*git, "reset", "-q", "--hard", first], check=True)
    commit("README.md", "results\n")
    assert protocol.run(spec, workers=1, runs_root=runs, code=code) == 0
    out = capsys.readouterr().out
    assert "not resumed" not in out and "note:" not in out
    assert (code / "calls.txt").read_text().splitlines()[1].startswith(f"resume={half.run_dir}")
    # a checkout whose commit git cannot tell: said in one line, nothing refused
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.py").write_text("")
    assert protocol.run(spec, workers=1, runs_root=runs, code=plain) == 0
    assert f"the commit of {plain} cannot be told" in capsys.readouterr().out


def test_several_protocols_are_one_queue(tmp_path, monkeypatch, capsys):
    """``run A B`` works through A, then B (``run`` itself, which skips and resumes, is tested above); a bad file
    among them is refused before any run starts; a queue stopped by a signal does not go on to the next protocol;
    ``--only`` reaches each protocol's own entries; status shows each."""
    first = write(tmp_path / "a", seeds=[3], name="first")
    second = write(tmp_path / "b", seeds=[4], name="second",
                   entries=[{"name": "td3-pendulum", "overrides": ["algo=td3", "env=pendulum"]}])
    runs = tmp_path / "runs"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({k: v for k, v in PROTO.items() if k != "statistic"}))
    seen, stop_after = [], set()

    def fake_run(spec, workers, threads, only, runs_root, code=None, hours=None):
        seen.append((spec["name"], only))
        result = protocol.Failed(1 if spec["name"] == "second" else 0)
        result.stopped = signal.SIGTERM if spec["name"] in stop_after else None
        return result

    monkeypatch.setattr(protocol, "run", fake_run)
    assert protocol.main(["run", str(first), str(bad), "--runs-root", str(runs)]) == 2
    assert "missing statistic" in capsys.readouterr().err and seen == []
    assert protocol.main(["run", str(first), str(second), "--runs-root", str(runs)]) == 1  # second's job failed
    assert seen == [("first", None), ("second", None)]
    seen.clear()
    assert protocol.main(["run", str(first), str(second), "--only", "td3-pendulum"]) == 1
    assert seen == [("second", ["td3-pendulum"])]
    seen.clear()
    assert protocol.main(["run", str(first), str(first), "--runs-root", str(runs)]) == 0  # a file named twice: once
    assert seen == [("first", None)]
    seen.clear()
    stop_after.add("first")
    assert protocol.main(["run", str(first), str(second), "--runs-root", str(runs)]) == 128 + signal.SIGTERM
    assert seen == [("first", None)]
    assert "stopped by SIGTERM: rerun the same command to resume; not started: second" in capsys.readouterr().err
    twin = write(tmp_path / "c", name="first")
    assert protocol.main(["run", str(first), str(twin)]) == 2
    assert "are both named 'first'" in capsys.readouterr().err and len(seen) == 1
    assert protocol.main(["status", str(first), str(second), "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "first: 0/1 runs finished" in out and "second: 0/1 runs finished" in out, out
    assert protocol.main(["compare", str(first), str(second), "--pairs", "a:b"]) == 2
    assert "compare reads one protocol" in capsys.readouterr().err


@pytest.mark.parametrize("change, needle", [
    ({"statistic": None}, "missing statistic"),
    ({"seeds": [1, -2]}, "seeds must be non-negative"),
    ({"entries": [{"name": "a", "overrides": ["seed=3"]}]}, "set by the runner"),
    ({"entries": [{"name": "a"}, {"name": "a"}]}, "unique name"),
])
def test_a_protocol_that_does_not_state_what_it_must_is_refused(tmp_path, change, needle):
    spec = {**PROTO, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(protocol.ProtocolError, match=needle):
        protocol.load(path)


def test_grouped_commands_and_the_comparison_of_two_entries(tmp_path):
    """``seeds_per_process: K`` puts an entry's seeds K to a process (one command with the group's seed list);
    ``compare`` reads the exported curves' window statistic per seed and states a difference with its verdict."""
    spec = protocol.load(write(tmp_path, seeds=[1, 2, 3], seeds_per_process=2,
                               entries=[{"name": "a", "overrides": ["algo=td3"]}, {"name": "b", "overrides": ["algo=td3"]}],
                               statistic_window={"first_step": 200, "last_step": 300, "evaluations": 2, "margin": 0.05}))
    jobs = protocol.jobs(spec, tmp_path / "runs")
    groups = protocol.grouped(jobs, 2)
    assert [[j.key for j in g] for g in groups] == [["a-seed1", "a-seed2"], ["a-seed3"], ["b-seed1", "b-seed2"], ["b-seed3"]]
    cmd = protocol.command(groups[0][0], 1, groups[0])
    assert "hardware.seeds_per_process=2" in cmd and "hardware.seed_list=[1,2]" in cmd and "seed=1" in cmd
    assert cmd[-1] == f"hydra.run.dir={tmp_path / 'runs' / 'tiny' / 'a'}-seed${{seed}}"
    for entry, base in (("a", 100.0), ("b", 90.0)):
        for s in (1, 2, 3):
            (spec["_path"].parent / f"{entry}-seed{s}.csv").write_text(
                f"step,return_mean,return_std\n100,0,0\n200,{base + s:f},0\n300,{base + 2 * s:f},0\n")
    row = protocol.compare(spec, [("a", "b")], 0.9)["pairs"][0]
    assert row["values_a"] == {1: 101.5, 2: 103.0, 3: 104.5} and abs(row["diff"] - 10.0) < 1e-9
    assert row["lo"] > 0 and row["min_p"] == 0.1  # the interval excludes 0, but 3 vs 3 cannot reach p < 0.10
    assert row["verdict"] == "not resolved"
    assert row["planned_a"] == row["planned_b"] == 3 and row["p_holm"] == row["p"]  # a family of one: unchanged
    two = protocol.compare(spec, [("a", "b"), ("b", "a")], 0.9)["pairs"]  # Holm over the call's pairs
    assert all(abs(r["p_holm"] - min(1.0, 2 * r["p"])) < 1e-12 for r in two)
    # --against: b is another protocol's entry, read on this protocol's window (a new setting against the runs before)
    other = protocol.load(write(tmp_path / "before", name="before", seeds=[1, 2, 3],
                                entries=[{"name": "a", "overrides": ["algo=td3"]}]))
    for s in (1, 2, 3):
        (other["_path"].parent / f"a-seed{s}.csv").write_text(
            f"step,return_mean,return_std\n200,{80 + s:f},0\n300,{80 + 2 * s:f},0\n")
    row = protocol.compare(spec, [("a", "a")], 0.9, against=other)["pairs"][0]
    assert row["values_b"] == {1: 81.5, 2: 83.0, 3: 84.5} and abs(row["diff"] - 20.0) < 1e-9
    # a pair still waiting for seeds counts as p = 1 in Holm's family (never more lenient than the final adjustment)
    (spec["_path"].parent / "b-seed3.csv").unlink()
    waiting = protocol.compare(spec, [("a", "a"), ("b", "a")], 0.9, against=other)
    full, part = waiting["pairs"]
    assert part["p_holm"] is None and part["p"] > 0  # measured on 2 of its 3 seeds: an interim p, no Holm
    assert full["p"] == 0.1 and abs(full["p_holm"] - 0.2) < 1e-12  # one of two, the other counted at p = 1
    assert waiting["holm_family"] == "1 of 2 pairs complete; the others count as p = 1"
    assert protocol.main(["compare", str(spec["_path"]), "--against", str(other["_path"]), "--pairs", "a:a"]) == 0
    assert json.loads((spec["_path"].parent / "compare_before.json").read_text())["against"] == "before"
    assert protocol.main(["compare", str(spec["_path"]), "--against", str(other["_path"]), "--pairs", "a:b"]) == 2
    assert protocol.main(["compare", str(spec["_path"]), "--against", str(tmp_path / "nosuch.yaml"), "--pairs", "a:a"]) == 2


def test_status_says_what_is_left_and_how_long_it_takes_at_the_measured_rates(tmp_path):
    spec = protocol.load(write(tmp_path, seeds=[1, 2, 3], entries=[
        {"name": "a", "overrides": ["algo=dqn", "env=cartpole", "total_steps=10000"]},
        {"name": "b", "overrides": ["algo=dqn", "env=acrobot", "total_steps=7200"]}]))
    runs = tmp_path / "runs"
    jobs = {j.key: j for j in protocol.jobs(spec, runs)}

    def fake(key, step, sps, done=False):
        d = jobs[key].run_dir
        d.mkdir(parents=True)
        rows = [{"step": s, "time/sps": sps} for s in range(1000, step + 1, 1000)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / (checkpoint.DONE if done else checkpoint.NAME)).write_text("")

    fake("a-seed1", 10000, 50.0, done=True)
    fake("a-seed2", 4000, 10.0)  # a's median rate: 30 steps/s
    out = protocol.status(spec, runs)
    head = out.splitlines()[0]
    # a: 6000 + 10000 left at 30/s; b (no rate of its own): 3 x 7200 at the protocol's median, 30/s
    assert head.startswith("tiny: 1/6 runs finished; left: 37,600 env steps")
    assert f"about {(16000 + 21600) / 30 / 3600:.1f} h of one core" in head and "else the median of those" in head
    assert "a-seed2" in out and "partial  step 4000  (10 steps/s lately)" in out
    # b's runs in another protocol under the same runs root lend it their rate (20/s): named in the line
    other = runs / "older" / "b-seed9"
    other.mkdir(parents=True)
    (other / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time/sps": 20.0}) + "\n"
                                                 for s in range(1000, 5001, 1000)))
    head = protocol.status(spec, runs).splitlines()[0]
    assert f"about {16000 / 30 / 3600 + 21600 / 20 / 3600:.1f} h" in head and "(for 1: its runs in other protocols" in head
    assert "else the median of those" not in head


def test_an_entry_with_no_run_borrows_the_rate_other_protocols_committed(tmp_path):
    """On a machine without run directories, an entry that has never run borrows the env steps/s that another
    protocol's committed runs.json keeps for an entry of the same name (so --hours can plan it); none: no rate."""
    spec = protocol.load(write(tmp_path))
    runs = tmp_path / "runs"
    assert protocol.measured_rates(spec, protocol.jobs(spec, runs)) == ({}, set())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "runs.json").write_text(json.dumps({
        "dqn-cartpole-seed1": {"entry": "dqn-cartpole", "seed": 1, "status": "done", "steps_per_s": 5.0},
        "dqn-acrobot-seed1": {"entry": "dqn-acrobot", "seed": 1, "status": "done", "steps_per_s": 9.0}}))
    rates, borrowed = protocol.measured_rates(spec, protocol.jobs(spec, runs))
    assert rates == {"dqn-cartpole": [5.0]} and borrowed == {"dqn-cartpole"}
