"""The committed protocols (``benchmarks/*/protocol.yaml``) as written: each loads, and each run it would start
composes and validates exactly as ``train.py`` would (``~tuned``, ``+env.kwargs...`` and all), without training.

Also what a protocol promises before its first run and could not fix afterwards: every ``key=value`` it sets is in the
composed config as written (no tuned file or later override shadows it), the budget fitting changes nothing
(``fit_starts`` / ``fit_schedule``: the starts and evaluation interval are the file's), the seeds are fresh and no two
protocols share one, and a statistic window holds exactly its number of evaluations on the steps our runs will
evaluate at, and the same steps on every seed of each anchor curve it names (after the protocol's anchor step
offset, where it states one).
"""

from __future__ import annotations

import copy
import datetime
import functools
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rlbase.report import benchmarks, protocol
from rlbase.runtime import api
from rlbase.runtime.validate import fit_schedule, fit_starts, validate, validate_tuned

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted((ROOT / "benchmarks").glob("*/protocol.yaml"))
GROUPS = ("algo", "env", "hardware", "logger", "dataset", "tuned")  # overrides that choose a file, not a value
USED_BEFORE = set(range(8))  # seeds 0-7: the project's exploration and tuning runs (docs/results.md)


def _entries():
    return [(path, e["name"]) for path in PROTOCOLS for e in protocol.load(path)["entries"]]


@functools.cache
def _compose(overrides: tuple[str, ...]):
    cfg, hydra_cfg = api.compose(list(overrides))
    return cfg, hydra_cfg


def compose(overrides: list[str]):
    """``api.compose``, once per override list (a copy each time: the budget fitting edits the config in place)."""
    cfg, hydra_cfg = _compose(tuple(overrides))
    return copy.deepcopy(cfg), hydra_cfg


def _overrides(spec: dict, entry: str) -> list[str]:
    e = next(e for e in spec["entries"] if e["name"] == entry)
    return [*spec.get("common", []), *e.get("overrides", [])]


def _run_overrides(spec: dict, entry: str) -> list[str]:
    """What ``protocol.command`` passes to train.py for a new run of the entry's first seed (its run dir aside)."""
    return [*_overrides(spec, entry), f"seed={spec['seeds'][0]}", "progress=false", "hardware.threads=1"]


def test_there_are_protocols():
    assert {"offpolicy_1m", "dqn_zoo", "onpolicy_tianshou", "offpolicy_100k"} <= {p.parent.name for p in PROTOCOLS}


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.parent.name)
def test_protocol_loads_and_states_what_it_must(path):
    spec = protocol.load(path)
    assert spec["name"] == path.parent.name, "the protocol's name is its directory (its runs and exports live there)"
    datetime.date.fromisoformat(str(spec["written"]))
    assert spec["entries"] and spec["seeds"]
    for e in spec["entries"]:
        algo, _ = benchmarks.split_entry(e["name"])  # <algo>-<task>: how the report finds the anchor file
        chosen = [o.partition("=")[2] for o in _overrides(spec, e["name"]) if o.startswith("algo=")]
        assert chosen == [algo], f"{e['name']}: the entry's algo= override must name its algorithm once ({chosen})"
    if spec.get("statistic_window"):
        benchmarks.statistic_of(spec)  # the report can build it


def test_seeds_are_fresh_and_no_two_protocols_share_one():
    seen: dict[int, str] = {}
    for path in PROTOCOLS:
        spec = protocol.load(path)
        assert len(set(spec["seeds"])) == len(spec["seeds"]), f"{spec['name']}: a seed is listed twice"
        for s in spec["seeds"]:
            assert s not in USED_BEFORE, f"{spec['name']}: seed {s} was used to explore or tune settings"
            assert s not in seen, f"seed {s} is in both {seen.get(s)} and {spec['name']}"
            seen[s] = spec["name"]


@pytest.mark.parametrize("path, entry", _entries(), ids=lambda x: x.parent.name if isinstance(x, Path) else x)
def test_every_run_composes_and_validates_as_written(path, entry):
    spec = protocol.load(path)
    overrides = _overrides(spec, entry)
    cfg, hydra_cfg = compose(_run_overrides(spec, entry))
    validate_tuned(dict(hydra_cfg.runtime.choices))
    validate(cfg)  # builds the env once (MuJoCo tasks too)
    explicit = {o.partition("=")[0].lstrip("+~") for o in overrides}
    before = OmegaConf.to_container(cfg, resolve=True)
    notes = fit_starts(cfg, explicit) + fit_schedule(cfg, explicit)
    assert notes == [] and OmegaConf.to_container(cfg, resolve=True) == before, \
        f"{entry}: the budget fitting would change the run: {notes}"
    parsed = OverridesParser.create().parse_overrides(overrides)
    for o, text in zip(parsed, overrides):
        key = o.key_or_group
        if o.is_delete() or key in GROUPS or key.startswith("hydra."):
            continue
        value = o.value()
        got = OmegaConf.select(cfg, key)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == value or (isinstance(value, float) and got == pytest.approx(value)), \
            f"{entry}: {text!r} composed as {key}={got!r}"


def _our_eval_steps(cfg) -> list[int]:
    """The steps the Runner evaluates at (``Runner.advance``): the end of the first advance at or past each multiple
    of eval_every, and the end of the last one. An on-policy advance is one rollout (num_envs x n_steps), an
    off-policy one a single env step."""
    advance = cfg.algo.num_envs * cfg.algo.n_steps if "n_steps" in cfg.algo else 1
    end = -(-cfg.total_steps // advance) * advance
    every = cfg.eval_every
    crossings = {-(-m * every // advance) * advance for m in range(1, end // every + 1)}
    return sorted({s for s in crossings if s <= end} | {end})




@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.parent.name)
def test_the_statistic_window_holds_its_evaluations_on_both_sides(path):
    spec = protocol.load(path)
    if benchmarks.number_anchor(spec) is not None:  # one published number per task (as the report decides it)
        for e in spec["entries"]:
            cfg, _ = compose(_run_overrides(spec, e["name"]))
            assert spec["final_steps"][e["name"]] in _our_eval_steps(cfg), f"{e['name']}: no evaluation at its final step"
        return
    stat = benchmarks.statistic_of(spec)  # the file's statistic_window, or the report's STATISTICS entry
    if stat is None:
        pytest.skip(f"{spec['name']} states no window (its statistic is text only)")
    for e in spec["entries"]:
        algo, task = benchmarks.split_entry(e["name"])
        cfg, _ = compose(_run_overrides(spec, e["name"]))
        ours = [s for s in _our_eval_steps(cfg) if stat.first_step <= s <= stat.last_step]
        assert len(ours) == stat.evaluations, f"{e['name']}: our evaluations in the window are at {ours}"
        for a in spec.get("anchors") or []:
            wanted = f"benchmarks/anchors/{a['source']}/{algo}-{task}.csv"
            if "files" not in a or wanted not in benchmarks.expand(a["files"]):
                continue
            shift = int((a.get("step_offset") or {}).get(algo, 0))  # the anchor's steps on env steps, as the report reads them
            for seed, curve in benchmarks.read_curves(ROOT / wanted).items():
                theirs = [s + shift for s, _ in curve if stat.first_step <= s + shift <= stat.last_step]
                assert theirs == ours, f"{wanted} seed {seed}: {theirs} in the window (shifted by {shift}), ours {ours}"


# A cause test reruns a base protocol's entries with one stated change; nothing else may differ.
CAUSE_TESTS = [("a2c_noclip", "onpolicy_tianshou", {"algo.max_grad_norm": 0}),
               ("onpolicy_ant_inputs", "onpolicy_tianshou", {"algo.init_zero_inputs": 84}),
               ("walker2d_model", "offpolicy_1m", {"env.kwargs.xml_file": "walker2d.xml"})]


@pytest.mark.parametrize("name, base, change", CAUSE_TESTS, ids=[c[0] for c in CAUSE_TESTS])
def test_a_cause_test_differs_from_its_base_protocol_only_in_its_change(name, base, change):
    spec, base_spec = (protocol.load(ROOT / "benchmarks" / n / "protocol.yaml") for n in (name, base))
    assert not set(spec["seeds"]) & set(base_spec["seeds"])
    assert benchmarks.statistic_of(spec) == benchmarks.statistic_of(base_spec)  # the file's window or the registry's
    assert {e["name"] for e in spec["entries"]} <= {e["name"] for e in base_spec["entries"]}
    anchors = {(a["source"], a["version"]) for a in spec["anchors"]}
    assert anchors == {(a["source"], a["version"]) for a in base_spec["anchors"]}
    for e in spec["entries"]:  # each entry is read against the same anchor file as in the base protocol
        algo, task = e["name"].split("-", 1)
        assert any(algo in a["files"] and task in a["files"] for a in spec["anchors"]), e["name"]
    for e in spec["entries"]:
        cfg, _ = compose(_overrides(spec, e["name"]))
        ref, _ = compose(_overrides(base_spec, e["name"]))
        got, want = (OmegaConf.to_container(c, resolve=True) for c in (cfg, ref))
        for key, value in change.items():
            assert OmegaConf.select(cfg, key) == value and OmegaConf.select(ref, key) != value
            *path, leaf = key.split(".")
            node = want
            for k in path:
                node = node[k]
            node[leaf] = value  # the base's config with the stated change made: must be the cause test's config
        assert got == want, e["name"]
