"""Pre-registered benchmarks: a protocol file, a resumable runner, and the per-seed curves it commits.

A protocol is ``benchmarks/<name>/protocol.yaml``, written (and committed) before its first run starts: what is run
(algorithm, task and version, every setting that differs from the defaults), on which seeds (fresh ones, never
those a setting was chosen on), for how long, how it is evaluated, and which statistic and anchor it will be compared
with. This module runs it and collects what it produced:

    python scripts/protocol.py run benchmarks/offpolicy_1m/protocol.yaml --workers 2    # resumable queue
    python scripts/protocol.py status benchmarks/offpolicy_1m/protocol.yaml             # how far, what is left, how long
    python scripts/protocol.py export benchmarks/offpolicy_1m/protocol.yaml             # per-seed curves -> CSV
    python scripts/protocol.py run benchmarks/a/protocol.yaml benchmarks/b/protocol.yaml --workers 1   # a queue: a, then b

``run`` works through every (entry, seed) in the file's order with ``--workers`` jobs at a time (one torch thread
each by default): a finished run is skipped, an unfinished one resumes from its checkpoint (``resume=<dir>``), a
new one starts. Stop it any time (Ctrl-C or SIGTERM: every job checkpoints first) and start it again, in this
session or the next. Run directories live under ``benchmarks/runs/<protocol>/`` (ignored by git; ``--runs-root``
or ``$RLBASE_BENCH_RUNS`` puts them elsewhere, e.g. outside a checkout that is laid anew each session; a run that
``runs.json`` records as finished, with its curve committed, counts as finished even when its directory is gone);
``--code <checkout>`` runs another checkout's train.py (a worktree at the commit of the protocol's earlier seeds,
so that the rest run the same code); a half-made run is never resumed on other code than it started with (its
provenance.json's commit, against the checkout's: another commit counts as the same code when it differs in no file
the training reads, ``CODE_PATHS``; the queue leaves such a run and names the commit to resume it on), and a new seed
on other code than the earlier ones is started with a note saying so; ``export``
writes one small CSV per run next to the protocol (``<entry>-seed<k>.csv``: ``step,return_mean,return_std``,
finished runs only unless ``--partial``) plus ``runs.json`` (which commit made each run, its last step,
whether it finished, when it started, its env steps/s, the torch threads of its start and of each resume, and the
earlier attempts whose run directory went with a machine: ``lost``), and those files are what the results page is
computed from.

Protocol file keys: ``name``, ``written`` (date), ``issue``, ``purpose``, ``seeds`` (list), ``common`` (overrides
for every run), ``entries`` (list of ``{name, overrides}``), ``evaluation`` / ``statistic`` / ``anchors`` (text and
data references read by the report), ``notes``; optional ``seeds_per_process`` (K: each entry's seeds run K at a time
in one process, ``hardware.seeds_per_process``; each seed keeps its own run directory).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository: train.py, benchmarks/
FINISHED = ("done", "exported")  # states a queue does not start again
REQUIRED = ("name", "written", "purpose", "seeds", "entries", "evaluation", "statistic")


class ProtocolError(ValueError):
    """A protocol file that cannot be run as written (one line naming what is wrong)."""


@dataclass
class Job:
    entry: str
    seed: int
    overrides: list[str]
    run_dir: Path
    record: Optional[dict] = None  # its entry in the protocol's committed runs.json, when that says it finished

    @property
    def key(self) -> str:
        return f"{self.entry}-seed{self.seed}"


def load(path: Path) -> dict[str, Any]:
    """The protocol at ``path``, checked: every required key, unique entry names, integer seeds."""
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(f"{path}: no such protocol file (benchmarks/<name>/protocol.yaml)")
    spec = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise ProtocolError(f"{path}: missing {', '.join(missing)}; a protocol states {', '.join(REQUIRED)}")
    names = [e.get("name") for e in spec["entries"]]
    if None in names or len(set(names)) != len(names):
        raise ProtocolError(f"{path}: every entry needs a unique name (have {names})")
    if not all(isinstance(s, int) and s >= 0 for s in spec["seeds"]):
        raise ProtocolError(f"{path}: seeds must be non-negative integers (have {spec['seeds']})")
    for e in spec["entries"]:
        for o in [*spec.get("common", []), *e.get("overrides", [])]:
            if o.partition("=")[0] in ("seed", "hydra.run.dir", "resume"):
                raise ProtocolError(f"{path}: entry {e['name']}: {o!r} is set by the runner (seeds: the seeds list)")
    spec["_path"] = path
    return spec


def jobs(spec: dict[str, Any], runs_root: Optional[Path] = None) -> list[Job]:
    """Every (entry, seed) of the protocol, entries in file order, seeds in list order within each entry."""
    root = Path(runs_root or os.environ.get("RLBASE_BENCH_RUNS") or ROOT / "benchmarks" / "runs").resolve() / spec["name"]
    done = finished_records(spec)
    out = []
    for e in spec["entries"]:
        for s in spec.get("entry_seeds", {}).get(e["name"], spec["seeds"]):
            key = f"{e['name']}-seed{s}"
            out.append(Job(e["name"], int(s), [*spec.get("common", []), *e.get("overrides", [])], root / key,
                           done.get(key)))
    return out


def finished_records(spec: dict[str, Any]) -> dict[str, dict]:
    """The runs the protocol's committed ``runs.json`` records as finished and whose curve file is beside it: they
    count as finished even where their run directory is gone (a runs root lost with a machine), so a queue never
    starts them again and ``export`` keeps what was committed."""
    out_dir = Path(spec["_path"]).parent
    path = out_dir / "runs.json"
    if not path.is_file():
        return {}
    manifest = json.loads(path.read_text())
    return {k: v for k, v in manifest.items() if v.get("status") == "done" and (out_dir / f"{k}.csv").is_file()}


def state_of(job: Job) -> tuple[str, int]:
    """("done" | "partial" | "new", last logged step) of a job's run directory; ("exported", its last step) for a run
    whose finished curve is committed (runs.json) while its directory here is not finished (gone, or a run started
    again by hand): it is not run again, and its committed files are kept."""
    from rlbase.core import checkpoint
    from rlbase.core.logger import read_metrics

    d = job.run_dir
    if job.record is not None and not checkpoint.is_done(d):
        return "exported", int(job.record.get("last_step", 0))
    step = 0
    if (d / "metrics.jsonl").exists():
        rows = [r for r in read_metrics(d / "metrics.jsonl") if "step" in r]
        step = max((int(r["step"]) for r in rows), default=0)
    if checkpoint.is_done(d):
        return "done", step
    return ("partial" if checkpoint.exists(d) else "new"), step


def _git(*args: str, cwd: Optional[Path] = None) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _start_commit(run_dir: Path) -> Optional[str]:
    """The commit a run started at (its provenance.json's git record); None where that is not recorded."""
    path = run_dir / "provenance.json"
    if not path.is_file():
        return None
    try:
        commit = (json.loads(path.read_text()).get("git") or {}).get("commit")
    except (OSError, ValueError):
        return None
    return commit if commit and commit != "unknown" else None


def recorded_commits(spec: dict[str, Any], all_jobs: list[Job]) -> dict[str, int]:
    """The commits the protocol's runs so far were made at, with how many runs each: the committed runs.json's
    records, and the runs here that have made something (finished, or checkpointed: the commit each started at)."""
    out: dict[str, int] = {}
    for job in all_jobs:
        commits = set(job.record.get("commits", [])) if job.record else set()
        start = _start_commit(job.run_dir)
        if start and state_of(job)[0] in ("done", "partial"):
            commits.add(start)
        for c in {c for c in commits if c and c != "unknown"}:
            out[c] = out.get(c, 0) + 1
    return out


# what a run's trajectory depends on: two commits that differ nowhere here run the same code
CODE_PATHS = ("rlbase", "train.py", "requirements.txt", "pyproject.toml")


def head_commit(checkout: Path) -> Optional[str]:
    """The commit checked out at ``checkout``, or None where that cannot be told (not a git checkout, no commit)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=checkout, capture_output=True,
                              text=True, timeout=20)
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=checkout, capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(checkout).resolve():
        return None  # (a copy inside another repository would report that repository's commit)
    return proc.stdout.strip() or None


def same_code(a: str, b: str, checkout: Path) -> bool:
    """Whether commits ``a`` and ``b`` (full or abbreviated) run the same code: the same commit, or commits that
    differ in none of ``CODE_PATHS`` (e.g. a commit that only added results). False where git cannot tell."""
    if a.startswith(b) or b.startswith(a):
        return True
    try:
        proc = subprocess.run(["git", "diff", "--quiet", a, b, "--", *CODE_PATHS], cwd=checkout, capture_output=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def command(job: Job, threads: int, group: Optional[list[Job]] = None, code: Optional[Path] = None) -> list[str]:
    """The command of one job, or of a group of one entry's jobs trained in one process (``group``, led by ``job``:
    every seed in its own ``<entry>-seed<s>`` directory); ``code``: the checkout whose train.py runs (default this
    one)."""
    train = str(Path(code or ROOT).resolve() / "train.py")  # jobs run in that directory: an absolute path
    status, _ = state_of(job)
    if status == "partial" or (group and any(state_of(g)[0] == "partial" for g in group)):
        # the run's recorded settings, its checkpoint and its W&B id: an exact continuation (a group's from its
        # .hydra/seed_group.yaml, whichever member is named)
        lead = job if status == "partial" else next(g for g in group if state_of(g)[0] == "partial")
        # threads are this call's (--threads), not the start's: a resume may change them (hardware.* is resume-safe;
        # runs.json keeps the threads of each start and resume)
        return [sys.executable, train, f"resume={lead.run_dir}", f"hardware.threads={threads}"]
    if group and len(group) > 1:
        seeds = ",".join(str(g.seed) for g in group)
        return [sys.executable, train, *job.overrides, f"seed={job.seed}", "progress=false",
                f"hardware.threads={threads}", f"hardware.seeds_per_process={len(group)}", f"hardware.seed_list=[{seeds}]",
                f"hydra.run.dir={job.run_dir.parent / job.entry}-seed${{seed}}"]
    return [sys.executable, train, *job.overrides, f"seed={job.seed}", "progress=false",
            f"hardware.threads={threads}", f"hydra.run.dir={job.run_dir}"]


def grouped(todo: list[Job], k: int) -> list[list[Job]]:
    """An entry's unfinished jobs, ``k`` at a time in seed-list order (one process each)."""
    out: list[list[Job]] = []
    for job in todo:
        if out and len(out[-1]) < k and out[-1][0].entry == job.entry:
            out[-1].append(job)
        else:
            out.append([job])
    return out


class Failed(int):
    """The number of jobs that failed, with ``stopped``: the signal (SIGINT, SIGTERM) that ended the queue early,
    after every running job checkpointed; None when the queue ran to its end."""

    stopped: Optional[int] = None


def _span(hours: float) -> str:
    """A duration for a log line: minutes below two hours (a PPO run's "0.1 h" said too little), else hours."""
    hours = max(hours, 0.0)
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h"


def run(spec: dict[str, Any], workers: int = 2, threads: int = 1, only: Optional[list[str]] = None,
        runs_root: Optional[Path] = None, code: Optional[Path] = None, hours: Optional[float] = None) -> Failed:
    """Work through the protocol's jobs, ``workers`` at a time; returns the number of jobs that failed, whose
    ``stopped`` names the signal that ended the queue early (each running job is sent SIGTERM and checkpoints).
    ``code``: another checkout of this repository whose train.py and package the jobs run (e.g. a worktree at the
    commit a protocol's first seeds ran, so that later seeds run the same code); its commit is logged per job.
    ``hours``: start only jobs expected to finish within that many hours of the call (at their entry's measured
    rate, ``hours_left``); the others wait for a later call, so a machine that goes away at a known time (a session,
    a Slurm allocation) loses no half-made run. A job whose entry has no measured rate is not started either.
    A half-made run that started on other code than ``code``'s (``same_code``: another commit whose ``CODE_PATHS``
    differ) is not resumed, nor is the rest of its seed group; a line names the commit to resume it on. A new run
    on other code than the protocol's earlier runs starts, with a note saying so."""
    code_root = Path(code).resolve() if code else ROOT
    deadline = None if hours is None else time.monotonic() + hours * 3600
    all_jobs = jobs(spec, runs_root)
    todo = [j for j in jobs(spec, runs_root) if (only is None or j.entry in only) and state_of(j)[0] not in FINISHED]
    k = int(spec.get("seeds_per_process", 1))
    print(f"{spec['name']}: {len(todo)} run(s) to start or resume, {workers} at a time"
          + (f", {k} seeds per process" if k > 1 else ""), flush=True)
    refused: list[Job] = []
    head = head_commit(code_root)
    if head is None and todo:
        print(f"note: the commit of {code_root} cannot be told (not a git checkout of its own), so whether a run "
              "resumes on the code it started with is not checked", flush=True)
    elif todo:
        # A run is never continued on other code than it started with (its trajectory would come from two codes);
        # a whole seed group goes with any of its members. A new seed on other code than the earlier ones is allowed
        # (a protocol says "X or later"), but said.
        for j in todo:
            c = _start_commit(j.run_dir)
            if j in refused or state_of(j)[0] != "partial" or not c or same_code(c, head, code_root):
                continue
            recorded = j.run_dir / ".hydra" / "seed_group.yaml"
            members = {Path(m["run_dir"]) for m in yaml.safe_load(recorded.read_text())} if recorded.is_file() else set()
            group = [g for g in todo if g is j or g.run_dir in members]
            refused += [g for g in group if g not in refused]
            print(f"{time.strftime('%H:%M:%S')} not resumed: {', '.join(g.key for g in group)} (started at {c[:7]}; "
                  f"this queue's code {code_root} is at {head[:7]}, whose {', '.join(CODE_PATHS)} differ): one run "
                  f"would come from two codes. Resume it on its own commit: --code <a checkout at {c[:7]}> (git "
                  f"worktree add --detach <dir> {c[:7]})", flush=True)
        todo = [j for j in todo if j not in refused]
        earlier = recorded_commits(spec, all_jobs)
        if any(state_of(j)[0] == "new" for j in todo) and earlier \
                and not any(same_code(c, head, code_root) for c in earlier):
            most = max(earlier, key=lambda c: earlier[c])
            print(f"note: {spec['name']}'s runs so far were made at {', '.join(sorted(c[:7] for c in earlier))}; new "
                  f"runs here are made at {head[:7]}, whose code differs, so the protocol's seeds will come from more "
                  f"than one code (its code: {spec.get('code', 'not stated')!r}); to keep one: --code <a checkout at "
                  f"{most[:7]}> (most runs: {earlier[most]})", flush=True)
    groups: list[list[Job]] = []
    rest = list(todo)
    for job in todo:  # an unfinished group resumes as it was (its .hydra/seed_group.yaml), whatever the grouping now
        recorded = job.run_dir / ".hydra" / "seed_group.yaml"
        if job in rest and state_of(job)[0] == "partial" and recorded.is_file():
            members = {Path(m["run_dir"]) for m in yaml.safe_load(recorded.read_text())}
            groups.append([j for j in rest if j.run_dir in members])
            rest = [j for j in rest if j.run_dir not in members]
    groups += grouped(rest, k)
    live: dict[int, tuple[Job, subprocess.Popen, Any, list[Job]]] = {}
    failed = 0
    stopping = {"sig": None}

    def on_signal(signum, frame):  # hand it to every job (each checkpoints), then stop starting new ones
        stopping["sig"] = signum
        for _, proc, _, _ in live.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while groups or live:
            while groups and len(live) < workers and stopping["sig"] is None:
                group = groups.pop(0)
                job = group[0]
                if deadline is not None:
                    measured = measured_rates(spec, all_jobs)[0]
                    need = [hours_left(g, state_of(g)[1], measured) for g in group]
                    left = (deadline - time.monotonic()) / 3600
                    keys = ", ".join(g.key for g in group)
                    if None in need:
                        print(f"{time.strftime('%H:%M:%S')} not started: {keys} (no rate of {job.entry} measured yet, "
                              "so --hours cannot tell whether it would finish; run it once without --hours, e.g. "
                              f"--only {job.entry})", flush=True)
                        continue
                    if max(need) > left:
                        print(f"{time.strftime('%H:%M:%S')} not started: {keys} (needs about {_span(max(need))} at "
                              f"the rate measured so far, {_span(left)} left); a later call starts it",
                              flush=True)
                        continue
                job.run_dir.parent.mkdir(parents=True, exist_ok=True)
                cmd = command(job, threads, group, code=code)
                log = open(job.run_dir.parent / f"{job.key}.log", "a")
                log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} commit {_git('rev-parse', 'HEAD', cwd=code_root)}"
                          f": {' '.join(cmd[1:])}\n")
                log.flush()
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                if code:  # its package, not the one installed from this checkout
                    env["PYTHONPATH"] = os.pathsep.join([str(code_root), *filter(None, [env.get("PYTHONPATH")])])
                proc = subprocess.Popen(cmd, cwd=code_root, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)  # our signal handler decides what reaches it
                live[proc.pid] = (job, proc, log, group)
                if stopping["sig"] is not None:  # the signal came while it was being started: it was not in live
                    proc.send_signal(signal.SIGTERM)
                print(f"{time.strftime('%H:%M:%S')} start {', '.join(f'{g.key} ({state_of(g)[0]})' for g in group)}",
                      flush=True)
            if stopping["sig"] is not None:
                groups.clear()
            time.sleep(0.5)  # a job that ends is seen within half a second (polling costs nothing here)
            for pid, (_, proc, log, group) in list(live.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del live[pid]
                for g in group:
                    status, step = state_of(g)
                    print(f"{time.strftime('%H:%M:%S')} {g.key}: exit {rc}, {status} at step {step}", flush=True)
                if rc != 0 and stopping["sig"] is None:
                    failed += 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if refused:  # said again at the end, where a long queue's log is read
        print(f"{time.strftime('%H:%M:%S')} {spec['name']}: not resumed (they started on other code): "
              f"{', '.join(j.key for j in refused)}", flush=True)
    result = Failed(failed)
    result.stopped = stopping["sig"]
    return result


def curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, eval/return_mean, eval/return_std) of every evaluation in the run's metrics."""
    from rlbase.core.logger import read_metrics

    if not (run_dir / "metrics.jsonl").exists():
        return []
    return [(int(r["step"]), float(r["eval/return_mean"]), float(r.get("eval/return_std", float("nan"))))
            for r in read_metrics(run_dir / "metrics.jsonl") if "eval/return_mean" in r]


def _csv(rows: list[tuple[int, float, float]]) -> str:
    return "step,return_mean,return_std\n" + "".join(f"{s},{m:.4f},{sd:.4f}\n" for s, m, sd in rows)


def _threads(run_dir: Path) -> list[int]:
    """The torch threads a run used: its start's, then each resume's (``provenance.json``, then the lines of
    ``provenance.resumed.jsonl``); empty where no record is there."""
    records = []
    if (run_dir / "provenance.json").is_file():
        records.append(json.loads((run_dir / "provenance.json").read_text()))
    if (run_dir / "provenance.resumed.jsonl").is_file():
        records += [json.loads(line) for line in (run_dir / "provenance.resumed.jsonl").read_text().splitlines()
                    if line.strip()]
    return [int(r["machine"]["torch_threads"]) for r in records if r.get("machine", {}).get("torch_threads")]


def _started(run_dir: Path) -> Optional[str]:
    """When the run in ``run_dir`` first started (its provenance.json's time), which tells one attempt at a seed
    from another; None where it has not started."""
    path = run_dir / "provenance.json"
    return json.loads(path.read_text()).get("time") if path.is_file() else None


def _lost(before: Optional[dict], status: str, started: Optional[str]) -> list[dict]:
    """The attempts at a run that ``runs.json`` recorded (``before``) and whose run directory is gone: the record's
    own ``lost`` list, plus the record itself when it was an unfinished attempt with steps that is not the run here
    (another start time, or no run here; a record made before start times were kept counts as lost only when no
    run is here)."""
    if not before:
        return []
    lost = list(before.get("lost", []))
    was = before.get("started")
    gone = status == "new" if was is None else was != started
    if before.get("status") != "done" and before.get("last_step", 0) > 0 and gone:
        lost.append({k: before[k] for k in ("started", "last_step", "commits") if k in before})
    return lost


def export(spec: dict[str, Any], partial: bool = False, runs_root: Optional[Path] = None) -> list[Path]:
    """Write each finished run's evaluation curve next to the protocol (``<entry>-seed<k>.csv``) and
    ``runs.json``; with ``partial`` unfinished runs too (their files say so in runs.json)."""
    out_dir = Path(spec["_path"]).parent
    written, manifest = [], {}
    before = json.loads((out_dir / "runs.json").read_text()) if (out_dir / "runs.json").is_file() else {}
    for job in jobs(spec, runs_root):
        status, step = state_of(job)
        if job.record is not None:  # committed as finished: its record and curve stay as they are
            manifest[job.key] = job.record
            same = status == "done" and _csv(curve(job.run_dir)) == (out_dir / f"{job.key}.csv").read_text()
            if same and "steps_per_s" not in job.record and _rate(job, rows=None):  # exported before rates were kept
                manifest[job.key] = {**manifest[job.key], "steps_per_s": round(_rate(job, rows=None), 1)}
            if same and "threads" not in job.record and _threads(job.run_dir):  # exported before threads were kept
                manifest[job.key] = {**manifest[job.key], "threads": _threads(job.run_dir)}
            if status == "done" and not same:
                print(f"kept the committed {job.key} (runs.json and its CSV); a finished run of it is in "
                      f"{job.run_dir} too: to replace the committed one, remove its record and CSV, then export",
                      file=sys.stderr)
            continue
        commits = []
        log = job.run_dir.parent / f"{job.key}.log"
        if log.exists():
            commits = sorted({line.split("commit ")[1].split(":")[0] for line in log.read_text().splitlines()
                              if line.startswith("# ") and "commit " in line})
        manifest[job.key] = {"entry": job.entry, "seed": job.seed, "status": status, "last_step": step,
                             "commits": commits}
        started = _started(job.run_dir)
        if started:
            manifest[job.key]["started"] = started
        lost = _lost(before.get(job.key), status, started)
        if lost:  # earlier attempts whose run directory went (a machine not kept): said, not silently dropped
            manifest[job.key]["lost"] = lost
        threads = _threads(job.run_dir)
        if threads:  # torch threads of the first start and of each resume, in order (a resume may change them)
            manifest[job.key]["threads"] = threads
        rate = _rate(job, rows=None) if status != "new" else None
        if rate:  # the run's env steps/s over its whole log: kept with the record, so a later machine can plan
            manifest[job.key]["steps_per_s"] = round(rate, 1)
        if status != "done" and not (partial and status == "partial"):
            continue
        path = out_dir / f"{job.key}.csv"
        path.write_text(_csv(curve(job.run_dir)))
        written.append(path)
    tmp = out_dir / "runs.json.tmp"  # a queue reading it meanwhile sees the old file or the new one, never half
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out_dir / "runs.json")
    return written


def window_values(spec: dict[str, Any], entry: str) -> dict[int, float]:
    """Per seed of ``entry``: the mean evaluation return over the protocol's ``statistic_window`` (its exported
    ``<entry>-seed<k>.csv``; seeds with no file, or without every evaluation of the window, are left out)."""
    w = spec["statistic_window"]
    out_dir = Path(spec["_path"]).parent
    values = {}
    for s in spec.get("entry_seeds", {}).get(entry, spec["seeds"]):
        path = out_dir / f"{entry}-seed{s}.csv"
        if not path.exists():
            continue
        rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line.strip()]
        window = [float(m) for st, m, _ in rows if w["first_step"] <= int(st) <= w["last_step"]]
        if len(window) == w["evaluations"]:
            values[int(s)] = sum(window) / len(window)
    return values


def compare(spec: dict[str, Any], pairs: list[tuple[str, str]], level: float,
            against: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Each pair (a, b) of the protocol's entries: mean(a) - mean(b) of the per-seed window statistic, its Welch
    interval at ``level`` and permutation p (``rlbase.report.stats.diff``), and the verdict with the margin
    ``statistic_window.margin`` times |mean(b)| (``stats.verdict``). With ``against`` (another protocol), each b is
    that protocol's entry, read with this protocol's window (a setting's new protocol against the runs before it).
    Each pair also records how many seeds each side's protocol plans (``planned_a`` / ``planned_b``) and Holm's
    adjusted p over all pairs of this call (the family; ``p_holm``, ``stats.holm``), where a pair without all its
    planned seeds counts as p = 1 (and gets ``p_holm`` None), so an interim adjustment is never more lenient."""
    from rlbase.report import stats

    out = {"protocol": spec["name"], "level": level, "window": spec["statistic_window"], "pairs": []}
    if against is not None:
        out["against"] = against["name"]
    for a, b in pairs:
        other = spec if against is None else {**against, "statistic_window": spec["statistic_window"]}
        va, vb = window_values(spec, a), window_values(other, b)
        row: dict[str, Any] = {"a": a, "b": b, "values_a": va, "values_b": vb,
                               "planned_a": len(spec.get("entry_seeds", {}).get(a, spec["seeds"])),
                               "planned_b": len(other.get("entry_seeds", {}).get(b, other["seeds"]))}
        if len(va) >= 2 and len(vb) >= 2:
            d = stats.diff(list(va.values()), list(vb.values()), level)
            margin = stats.margin_from(list(vb.values()), spec["statistic_window"]["margin"])
            row.update(mean_a=d.mean_a, mean_b=d.mean_b, diff=d.mean, lo=d.lo, hi=d.hi, p=d.p, min_p=d.min_p,
                       margin=margin, verdict=stats.verdict(d, margin).word, text=stats.format_diff(d))
        else:
            row["verdict"] = f"not measured ({len(va)} and {len(vb)} finished seeds)"
        out["pairs"].append(row)
    # Holm over every pair of the call (the pre-registered family), a pair without all its planned seeds counted as
    # p = 1: an adjustment made while some pairs wait is never more lenient than the final one
    complete = [len(r["values_a"]) == r["planned_a"] and len(r["values_b"]) == r["planned_b"] and "p" in r
                for r in out["pairs"]]
    adjusted = stats.holm([r["p"] if ok else 1.0 for r, ok in zip(out["pairs"], complete)]) if out["pairs"] else []
    for r, ok, q in zip(out["pairs"], complete, adjusted):
        if "p" in r:
            r["p_holm"] = float(q) if ok else None  # None: this pair's own seeds are not all in yet
    out["holm_family"] = (f"all {len(complete)} pairs complete" if all(complete) else
                          f"{sum(complete)} of {len(complete)} pairs complete; the others count as p = 1")
    return out


def _target_steps(job: Job) -> Optional[int]:
    """The job's ``total_steps`` as its overrides set it (the last one wins), or None (the env file's default)."""
    target = None
    for o in job.overrides:
        key, sep, value = o.partition("=")
        if sep and key.lstrip("+") == "total_steps":
            try:
                target = int(float(value))
            except ValueError:
                target = None
    return target


def _rate(job: Job, rows: Optional[int] = 50) -> Optional[float]:
    """Env steps per second over the run's last ``rows`` log rows (all of them with None): their steps over the time
    they took (each row's ``time/sps`` covers the steps since the row before, evaluations included, so this is the
    wall-clock rate a queue plans with, where a median of the rows would leave the evaluations out); for a run whose
    directory is not here, the rate its committed record keeps (``steps_per_s``)."""
    from rlbase.core.logger import read_metrics

    path = job.run_dir / "metrics.jsonl"
    if not path.exists():
        kept = (job.record or {}).get("steps_per_s")
        return float(kept) if kept else None
    logged = [(int(r["step"]), float(r["time/sps"])) for r in read_metrics(path) if "time/sps" in r and "step" in r]
    # each row's rate covers the steps since the row before (an evaluation inside them included): steps over time
    spans = [(b - a, b_sps) for (a, _), (b, b_sps) in zip([(0, 0.0), *logged], logged) if b > a and b_sps > 0]
    spans = spans[-rows:] if rows else spans
    seconds = sum(n / r for n, r in spans)
    return sum(n for n, _ in spans) / seconds if seconds > 0 else None


def measured_rates(spec: dict[str, Any], all_jobs: list[Job]) -> tuple[dict[str, list[float]], set[str]]:
    """Each entry's measured rates (env steps/s, one per run: ``_rate``), and the entries whose rates are borrowed:
    an entry with no run yet takes those of its runs of the same name in other protocols under the same runs
    root, or, where there are none, the rates the other protocols' committed ``runs.json`` keep for that name."""
    out: dict[str, list[float]] = {}
    for job in all_jobs:  # each run's whole log (evaluations and pauses in it), not its recent rows: plans hold
        rate = _rate(job, rows=None) if state_of(job)[0] != "new" else None
        if rate:
            out.setdefault(job.entry, []).append(rate)
    borrowed = set()
    for entry in sorted({j.entry for j in all_jobs} - set(out)):
        root = all_jobs[0].run_dir.parent.parent  # <runs root>/<protocol>/<entry>-seed<k>
        for other in sorted(root.glob(f"*/{entry}-seed*")):
            if other.is_dir() and other.parent.name != spec["name"]:
                r = _rate(Job(entry, -1, [], other))
                if r:
                    out.setdefault(entry, []).append(r)
                    borrowed.add(entry)
        if entry not in out:  # no such run here: the rates other protocols' committed runs.json keep (a new machine)
            home = Path(spec["_path"]).resolve().parent
            for manifest in sorted(home.parent.glob("*/runs.json")):
                if manifest.parent == home:
                    continue
                try:
                    records = json.loads(manifest.read_text()).values()
                except (OSError, ValueError, AttributeError):
                    continue
                for rec in records:
                    if isinstance(rec, dict) and rec.get("entry") == entry and rec.get("steps_per_s"):
                        out.setdefault(entry, []).append(float(rec["steps_per_s"]))
                        borrowed.add(entry)
    return out, borrowed


def hours_left(job: Job, step: int, measured: dict[str, list[float]]) -> Optional[float]:
    """Hours the job needs from ``step`` to its ``total_steps`` at its entry's median measured rate (its runs here,
    its committed records, or the same entry's runs in other protocols: ``measured_rates``), or None where none is
    known (another entry's rate says little: a task or an algorithm changes it several times over)."""
    target = _target_steps(job)
    rs = measured.get(job.entry)
    if target is None or not rs:
        return None
    return max(target - step, 0) / statistics.median(rs) / 3600


def status(spec: dict[str, Any], runs_root: Optional[Path] = None) -> str:
    """One line per run (state, last step, its recent env steps/s) and what is left: env steps, and the time they
    take at the rates measured so far (each entry's median rate; an entry with no run yet borrows the rates of its
    runs of the same name in other protocols under the same runs root; else the median of all those rates), which is
    core-hours when each run has one core; then the commits the runs so far were made at (with how many runs each),
    which is what ``run --code`` should check out for the rest."""
    lines, total, done = [], 0, 0
    todo: list[tuple[Job, int]] = []
    all_jobs = jobs(spec, runs_root)
    rates, borrowed = measured_rates(spec, all_jobs)
    for job in all_jobs:
        st, step = state_of(job)
        total += 1
        done += st in FINISHED
        rate = _rate(job) if st != "new" else None
        lines.append(f"  {job.key:32s} {st:8s} step {step}" + (f"  ({rate:.0f} steps/s lately)" if rate else "")
                     + ("  (its curve is committed; no finished run directory here)" if st == "exported" else ""))
        target = _target_steps(job)
        if st not in FINISHED:
            todo.append((job, max(target - step, 0) if target else -1))
    head = f"{spec['name']}: {done}/{total} runs finished"
    if todo:
        left = sum(n for _, n in todo if n >= 0)
        everyone = [r for rs in rates.values() if rs for r in rs]
        hours, unknown = 0.0, sorted({j.entry for j, n in todo if n < 0 or not (rates.get(j.entry) or everyone)})
        for job, n in todo:
            rs = rates.get(job.entry) or everyone
            if n >= 0 and rs:
                hours += n / statistics.median(rs) / 3600
        k = int(spec.get("seeds_per_process") or 1)  # K seeds advance together in one process, each at its rate
        head += f"; left: {left:,} env steps"
        if hours:
            head += (f", about {hours / k:.1f} h of one core at the rates measured so far (each entry's median"
                     f"{f' (for {len(borrowed)}: its runs in other protocols under the runs root)' if borrowed else ''}"
                     f"{'' if all(rates.get(j.entry) for j, _ in todo) else ', else the median of those'}"
                     f"{f'; {k} seeds per process' if k > 1 else ''})")
        if unknown:
            head += f"; not estimated: {', '.join(unknown)}"
    commits = recorded_commits(spec, all_jobs)
    if commits:  # what --code should point at for the rest (a half-made run resumes only on its own code)
        head += "\n  runs so far made at: " + ", ".join(f"{c[:7]} ({n})" for c, n in
                                                       sorted(commits.items(), key=lambda kv: -kv[1]))
    return head + "\n" + "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("run", "status", "export", "compare"))
    p.add_argument("protocol", type=Path, nargs="+",
                   help="protocol file(s); several: run works through them in order (a queue), status and export "
                        "take each in turn")
    p.add_argument("--workers", type=int, default=2, help="jobs at a time (run; default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (run; default 1)")
    p.add_argument("--only", nargs="+", default=None,
                   help="entry names to run (run; default all); with several protocols a name runs in each that has it")
    p.add_argument("--code", type=Path, default=None,
                   help="run: the checkout whose train.py the jobs run (default this one), e.g. `git worktree add "
                        "../wt <commit>` at the commit of a protocol's earlier seeds; its commit is logged per run")
    p.add_argument("--hours", type=float, default=None,
                   help="run: start only runs expected to finish within this many hours (at each entry's measured "
                        "rate; an entry with none is not started): what the machine will not outlive waits for a "
                        "later call")
    p.add_argument("--partial", action="store_true", help="export unfinished runs' curves too")
    p.add_argument("--pairs", default="", help="compare: entry_a:entry_b,... (a minus b, from the exported curves)")
    p.add_argument("--level", type=float, default=0.95, help="compare: interval level (default 0.95)")
    p.add_argument("--against", type=Path, default=None,
                   help="compare: read each pair's b from this protocol's exported curves (written to "
                        "compare_<its name>.json)")
    p.add_argument("--runs-root", type=Path, default=None,
                   help="where run directories live (default $RLBASE_BENCH_RUNS or benchmarks/runs/); put them outside "
                        "the checkout when the checkout is laid anew between sessions")
    args = p.parse_args(argv)
    specs = []
    for path in dict.fromkeys(f.resolve() for f in args.protocol):  # each file once, all checked before any work
        try:
            specs.append(load(path))
        except ProtocolError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec["name"] in seen:  # both would write runs/<name>/ and the same results
            print(f"error: {spec['_path']} and {seen[spec['name']]} are both named {spec['name']!r}; allowed: "
                  "protocols with different names", file=sys.stderr)
            return 2
        seen[spec["name"]] = spec["_path"]
    names = [e["name"] for spec in specs for e in spec["entries"]]
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            print(f"error: --only {', '.join(sorted(unknown))}: no such entry; allowed: "
                  f"{', '.join(dict.fromkeys(names))}", file=sys.stderr)
            return 2
    if len(specs) > 1 and args.action == "compare":
        print("error: compare reads one protocol; allowed: one protocol file", file=sys.stderr)
        return 2
    if args.action == "status":
        print("\n\n".join(status(spec, args.runs_root) for spec in specs))
        return 0
    if args.action == "export":
        for spec in specs:
            for path in export(spec, args.partial, args.runs_root):
                print(f"wrote {path}")
        return 0
    if args.action == "run":
        if args.workers < 1 or args.threads < 1:
            print("error: --workers and --threads must be at least 1", file=sys.stderr)
            return 2
        if args.hours is not None and not args.hours > 0:
            print(f"error: --hours {args.hours:g}: allowed: a positive number of hours", file=sys.stderr)
            return 2
        if args.code is not None and not (args.code / "train.py").is_file():
            print(f"error: --code {args.code}: no train.py there; allowed: a checkout of this repository "
                  "(e.g. git worktree add ../wt <commit>)", file=sys.stderr)
            return 2
        failed = 0
        until = None if args.hours is None else time.monotonic() + args.hours * 3600  # for the whole queue
        for i, spec in enumerate(specs):
            only = None if args.only is None else [x for x in args.only if x in {e["name"] for e in spec["entries"]}]
            if only == []:
                continue
            try:
                hours = None if until is None else (until - time.monotonic()) / 3600
                if hours is not None and hours <= 0:
                    print(f"--hours: no time left; not started: {', '.join(s['name'] for s in specs[i:])}",
                          file=sys.stderr)
                    break
                result = run(spec, args.workers, args.threads, only, args.runs_root, args.code, hours)
            except KeyboardInterrupt:  # between two protocols' handlers (no job is running then)
                result = Failed(0)
                result.stopped = signal.SIGINT
            failed += result
            if result.stopped is not None:  # every job has checkpointed; the rest waits for a rerun of this command
                left = [s["name"] for s in specs[i + 1:]]
                print(f"stopped by {signal.Signals(result.stopped).name}: rerun the same command to resume"
                      + (f"; not started: {', '.join(left)}" if left else ""), file=sys.stderr)
                return 128 + int(result.stopped)
        return 1 if failed else 0
    spec = specs[0]
    if args.action == "compare":
        pairs = [tuple(x.split(":")) for x in args.pairs.split(",") if x]
        try:
            against = load(args.against) if args.against else None
        except ProtocolError as e:
            print(f"error: --against: {e}", file=sys.stderr)
            return 2
        names = {e["name"] for e in spec["entries"]}
        other = names if against is None else {e["name"] for e in against["entries"]}
        bad = [pair[0] for pair in pairs if pair[0] not in names] + [pair[-1] for pair in pairs if pair[-1] not in other]
        if not pairs or bad or any(len(pair) != 2 for pair in pairs):
            print(f"error: --pairs a:b,... of entries; allowed a: {', '.join(sorted(names))}"
                  + (f"; allowed b (--against {against['name']}): {', '.join(sorted(other))}" if against else ""),
                  file=sys.stderr)
            return 2
        result = compare(spec, pairs, args.level, against)
        path = Path(spec["_path"]).parent / ("compare.json" if against is None else f"compare_{against['name']}.json")
        path.write_text(json.dumps(result, indent=1) + "\n")
        for row in result["pairs"]:
            print(f"{row['a']} - {row['b']}: {row.get('text', '')} -> {row['verdict']}"
                  + (f" (margin +-{row['margin']:.1f})" if "margin" in row else ""))
        print(f"wrote {path}")
        return 0
    return 2  # argparse allows no other action


if __name__ == "__main__":
    sys.exit(main())
