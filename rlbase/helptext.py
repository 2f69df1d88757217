"""``python train.py --help`` (``-h``): answered before Hydra, torch, gymnasium or MuJoCo is imported, from the
options' YAML files in rlbase/conf/<group>/ and (``algo=<name> --help``) the algorithm's config dataclass read from
its source with ``ast``. Hydra's own help is ``--hydra-help``; ``--cfg job`` prints the composed config."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

HELP_FLAGS = ("--help", "-h")
_PKG = Path(__file__).resolve().parent  # rlbase/
_HELP_GROUPS = ("algo", "env", "hardware", "logger", "dataset")
# rlbase.core.settings' helpers: the position of the default among their arguments
_HELPERS = {"positive": 0, "non_negative": 0, "any_value": 0, "one_of": 0, "unit": 0, "at_least": 1, "between": 2}


def wants_help(argv: list[str]) -> bool:
    return any(a in HELP_FLAGS for a in argv)


def _show(v) -> str:
    """A value as the command line writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_show(x)}" for k, x in v.items()) + "}"
    return str(v)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _yaml(path: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except Exception:  # noqa: BLE001 - help shows what it can read
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _about(path: Path) -> str:
    """The first sentence of an option file's leading comment (``# @package`` lines left out)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.lstrip("# ").startswith("@package"):
            lines.append(line.lstrip("#").strip())
    return re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(lines))[0] if lines else ""


def _steps(n) -> str:
    return f"{n // 1_000_000}M" if isinstance(n, int) and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if isinstance(n, int) and n % 1000 == 0 else str(n)


def _option_line(group: str, path: Path) -> str:
    values = {k: v for k, v in _yaml(path).items() if k not in ("defaults", "name", "hydra")}
    if group == "env" and values.get("id") not in (None, "???"):
        return f"{values['id']}, {_steps(values.get('total_steps'))} steps, eval every {values.get('eval_every')}"
    return _about(path) or " ".join(f"{k}={_show(v)}" for k, v in values.items() if not isinstance(v, dict))


def _module_path(module: str) -> Path | None:
    if module.split(".")[0] != "rlbase":
        return None
    base = _PKG.parent / module.replace(".", "/")
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _default(value, consts: dict) -> tuple[str, str]:
    """(default, what is allowed) of a dataclass field's value expression, read without running it."""

    def literal(node) -> str:
        try:
            return _show(ast.literal_eval(node))
        except (ValueError, SyntaxError, TypeError):
            if isinstance(node, ast.Name):
                return "???" if node.id == "MISSING" else _show(consts[node.id]) if node.id in consts else node.id
            return ast.unparse(node)

    if value is None:
        return "???", ""
    if isinstance(value, ast.Call):
        func = value.func.id if isinstance(value.func, ast.Name) else getattr(value.func, "attr", "")
        args, kw = value.args, {k.arg: k.value for k in value.keywords}
        if func in _HELPERS and len(args) > _HELPERS[func]:
            a = []
            for x in args:  # one_of(default, *CHOICES): the constant's values
                starred = isinstance(x, ast.Starred) and isinstance(x.value, ast.Name) and x.value.id in consts
                a += [_show(c) for c in consts[x.value.id]] if starred else [literal(x)]
            opened = {k: ast.literal_eval(v) for k, v in kw.items() if k in ("low_open", "high_open")}
            if func == "unit":
                allowed = f"{'>' if opened.get('low_open') else '>='} 0 and {'<' if opened.get('high_open') else '<='} 1"
            elif func in ("at_least", "between"):
                allowed = f">= {a[0]}" if func == "at_least" else f"{a[0]} to {a[1]}"
            else:
                allowed = {"positive": "> 0", "non_negative": ">= 0", "any_value": ""}.get(func, "one of " + ", ".join(a[1:]))
            return a[_HELPERS[func]], allowed
        if func == "field":
            if "default" in kw:
                return literal(kw["default"]), ""
            factory = kw.get("default_factory")
            if isinstance(factory, ast.Lambda):
                return literal(factory.body), ""
            if isinstance(factory, ast.Name) and factory.id in ("list", "dict"):
                return "[]" if factory.id == "list" else "{}", ""
            return (ast.unparse(factory) + "()" if factory is not None else "???"), ""
    return literal(value), ""


def _source(path: Path, _seen: dict = {}) -> tuple:  # noqa: B006 - the files parsed so far (one help reads each once)
    """(classes, imports, constants, comments by line, lines) of one of our modules, parsed, not imported. Constants
    are its module-level literals (of a dict, its keys) and the upper-case names it imports from our modules."""
    import io
    import tokenize

    if path in _seen:
        return _seen[path]
    source = path.read_text()
    classes, imports, consts = {}, {}, {}
    _seen[path] = (classes, imports, consts, {}, source.splitlines())
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            imports.update({a.asname or a.name: stmt.module for a in stmt.names})
        elif isinstance(stmt, ast.ClassDef):
            classes[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:  # ACTIVATIONS = {"tanh": nn.Tanh, ...}: its keys are what one_of(..., *ACTIVATIONS) allows
                value = stmt.value
                consts[stmt.targets[0].id] = tuple(ast.literal_eval(k) for k in value.keys) \
                    if isinstance(value, ast.Dict) else ast.literal_eval(value)
            except (ValueError, SyntaxError, TypeError):
                pass
    for name, module in imports.items():
        where = _module_path(module) if name.isupper() and name not in consts else None
        if where is not None and name in _source(where)[2]:
            consts[name] = _source(where)[2][name]
    _seen[path][3].update({t.start[0]: t.string.lstrip("#").strip()
                           for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT})
    return _seen[path]


def dataclass_settings(path: Path, cls: str) -> dict[str, tuple[str, str, str]]:
    """``name -> (default, allowed, comment)`` of the dataclass ``cls`` defined in ``path``, its bases' fields first
    (the order of ``dataclasses.fields``), read from the source files: nothing is imported."""

    classes, imports, consts, comments, lines = _source(path)
    node = classes.get(cls)
    if node is None:
        return {}
    fields: dict[str, tuple[str, str, str]] = {}
    for base in reversed(node.bases):  # the last base's fields come first, as in the class's MRO
        if isinstance(base, ast.Name):
            where = _module_path(imports[base.id]) if base.id in imports else path
            if where is not None:
                fields.update(dataclass_settings(where, base.id))
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        default, allowed = _default(stmt.value, consts)
        comment = " ".join(comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments)
        above, n = [], stmt.lineno - 1
        while not comment and n >= 1 and lines[n - 1].strip().startswith("#"):  # a comment block above the field
            above.insert(0, lines[n - 1].strip().lstrip("#").strip())
            n -= 1
        name = stmt.target.id
        fields[name] = (default, allowed, comment or " ".join(above) or fields.get(name, ("", "", ""))[2])
    return fields


def _algo_source(name: str) -> tuple[Path, str] | None:
    """(module file, config class) of an algorithm option, from rlbase/algos/__init__.py's ALGOS and the module's
    ``Config = ...`` line."""

    tree = ast.parse((_PKG / "algos" / "__init__.py").read_text())
    registry = next((ast.literal_eval(s.value) for s in tree.body if isinstance(s, (ast.Assign, ast.AnnAssign))
                     and "ALGOS" in ast.unparse(s.targets[0] if isinstance(s, ast.Assign) else s.target)), {})
    path = _module_path(registry[name]) if name in registry else None
    if path is None:
        return None
    for s in ast.parse(path.read_text()).body:
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            targets = s.targets[0].elts if isinstance(s.targets[0], ast.Tuple) else [s.targets[0]]
            values = s.value.elts if isinstance(s.value, ast.Tuple) else [s.value]
            for t, v in zip(targets, values):
                if isinstance(t, ast.Name) and t.id == "Config" and isinstance(v, ast.Name):
                    return path, v.id
    return path, "Config"


def _algo_file_values(name: str) -> dict:
    """The values conf/algo/<name>.yaml sets over the dataclass (through the options it extends: ddpg_lillicrap)."""
    path = _PKG / "conf" / "algo" / f"{name}.yaml"
    raw, values = _yaml(path), {}
    for parent in raw.get("defaults") or []:
        if isinstance(parent, str) and not parent.startswith("/") and parent != "_self_":
            values.update(_algo_file_values(parent))
    values.update({k: v for k, v in raw.items() if k not in ("defaults", "name")})
    return values


def _settings_lines(settings: dict[str, tuple[str, str, str]], prefix: str = "") -> list[str]:
    width = max((len(prefix + k) + len(d) + 1 for k, (d, _, _) in settings.items()), default=0)
    out = []
    for key, (default, allowed, comment) in settings.items():
        note = f"{comment}; allowed: {allowed}" if allowed and comment else comment or (allowed and f"allowed: {allowed}")
        out.append(_clip(f"  {f'{prefix}{key}={default}':<{width}}  {note}".rstrip(), 150))
    return out


def _algo_about(name: str) -> str:
    """An algorithm option's one line: its variant file's leading comment, else its module docstring's first line."""
    path = _PKG / "conf" / "algo" / f"{name}.yaml"
    if path.is_file():
        return _about(path)
    found = _algo_source(name)
    doc = ast.get_docstring(ast.parse(found[0].read_text())) if found else None
    return (doc or "").strip().splitlines()[0] if doc else ""


def _algo_help(name: str) -> str:
    found = _algo_source(name)
    if found is None:
        return f"algo={name}: {_algo_about(name)}"
    path, cls = found
    settings = {k: v for k, v in dataclass_settings(path, cls).items() if k != "name"}
    for key, value in _algo_file_values(name).items():
        old = settings.get(key, ("", "", ""))
        settings[key] = (_show(value), old[1], f"{old[2]} (set by conf/algo/{name}.yaml; the dataclass has {old[0]})".strip())
    tuned = sorted(p.stem for p in (_PKG / "conf" / "tuned").glob(f"{name}_*.yaml"))
    rel = path.relative_to(_PKG.parent)
    lines = [f"algo={name}: {_algo_about(name)}", "",
             f"settings (algo.<key>=value; the defaults are {cls}'s in {rel}):",
             *_settings_lines(settings, "algo."), ""]
    if tuned:
        lines += [f"tuned files (rlbase/conf/tuned/, loaded for their env: <algo>_<env>.yaml): {', '.join(tuned)}", ""]
    key, (value, _, _) = next(((k, v) for k, v in settings.items() if k != "gamma"), ("gamma", ("0.99", "", "")))
    lines += [f"example: python train.py algo={name} algo.{key}={value}; the whole composed config (with the env's tuned "
              f"values): python train.py algo={name} env=<env> --cfg job"]
    return "\n".join(lines)


def _general_help() -> str:
    conf = _PKG / "conf"
    lines = ["usage: python train.py [group=option ...] [key=value ...]      one run",
             "       python train.py -m [group=a,b ...] [key=x,y ...]         a sweep: one job per combination",
             "       python train.py algo=<name> --help                       an algorithm's settings and defaults", "",
             "examples:",
             "  python train.py algo=td3 env=hopper total_steps=1e5 seed=3       # TD3 on Hopper-v5, 100k steps, seed 3",
             "  python train.py -m algo=td3,sac env=hopper,walker2d seed=0,1,2   # a sweep: 2 x 2 x 3 = 12 runs",
             "  python train.py algo=td3 env=hopper hardware.seeds_per_process=5  # seeds 0-4 in one process (dqn, ddpg, td3, sac)",
             "",
             "groups (group=option; each option is a file in rlbase/conf/<group>/, each algorithm its config dataclass):"]
    from rlbase.conf import options

    for group in _HELP_GROUPS:
        names = options(group)
        width = max(len(n) for n in names)
        lines.append(f"  {group}=")
        lines += [_clip(f"    {n:<{width}}  {_algo_about(n) if group == 'algo' else _option_line(group, conf / group / f'{n}.yaml')}"
                        .rstrip(), 150) for n in names]
    presets = sorted((conf / "sweep").glob("*.yaml"))
    lines += ["  +sweep=  (presets: a sweep of tasks and seeds in one word)"]
    lines += [_clip(f"    {p.stem:<8}  {_about(p)}", 150) for p in presets]
    tuned = sorted(p.stem for p in (conf / "tuned").glob("*.yaml"))
    import textwrap

    lines += [textwrap.fill(f"values for one algo/env pair, loaded by default for it (<algo>_<env>): {', '.join(tuned)}",
                            120, initial_indent="  tuned=   ", subsequent_indent=" " * 12), "", "run settings (key=value):"]
    run = {k: v for k, v in dataclass_settings(conf / "schema.py", "RunConfig").items()
           if k not in ("algo", "env", "hardware", "logger", "dataset", "eval")}
    top = _yaml(conf / "config.yaml")
    run = {k: ((_show(top[k]), a, c) if k in top else (d, a, c)) for k, (d, a, c) in run.items()}
    lines += _settings_lines({**run, **{f"eval.{k}": v for k, v in dataclass_settings(conf / "schema.py", "EvalConfig").items()}})
    lines += ["", "more:",
              "  algo.<key>=value   the algorithm's settings: python train.py algo=<name> --help",
              "  env.<key>, hardware.<key>, logger.<key>, dataset.<key>: python train.py [overrides] --cfg job prints them all",
              "  resume=<run dir>   continue an unfinished run from its checkpoint",
              "  --hydra-help       Hydra's own options (--cfg job|hydra|all, --info, --multirun, ...)",
              "  README.md          the guide: protocols, offline datasets, sweeps on Slurm, tuning"]
    return "\n".join(lines)


def print_help(argv: list[str]) -> int:
    """The help ``--help``/``-h`` asks for: the general one, or each ``algo=<name>``'s settings; the exit code."""
    names = [v for a in argv if a.partition("=")[0].lstrip("+") == "algo" for v in a.partition("=")[2].split(",") if v]
    from rlbase.conf import options

    known = options("algo")
    for name in names:
        if name not in known:
            print(f"error: unknown algo option {name!r}; allowed: {', '.join(known)}", file=sys.stderr)
            return 2
    try:
        print("\n\n".join(_algo_help(n) for n in names) if names else _general_help(), flush=True)
    except BrokenPipeError:  # `train.py --help | head`: the reader stopped early, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


