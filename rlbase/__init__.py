"""rlbase: deep reinforcement learning for research, many algorithms on many tasks and seeds from one command.

From Python::

    import rlbase
    result = rlbase.run(["algo=td3", "env=hopper", "total_steps=20000"])   # as `python train.py ...` runs it
    policy = rlbase.load_policy(result.run_dir, which="best")             # acts on raw env observations

``rlbase.load_policy(run_dir, which="last" | "best")`` gives a trained run's :class:`~rlbase.policy.Policy` (see
``rlbase/policy.py``). Everything is imported on first use, so ``import rlbase`` stays light.

Layers, bottom to top (each imports only those below it): ``core`` (settings, seeding, checkpoints, networks,
storage, logger, evaluation) -> ``envs``, ``data`` -> ``algos`` -> ``loops`` (the Runner and the loop kinds) ->
``conf`` (config schemas) -> ``runtime`` (validation, one run, ``run()``) -> ``report`` (statistics, anchors, plots,
protocols) -> ``policy``, ``cli`` (the command line). ``train.py`` and ``scripts/`` are thin command lines over them.
"""

__all__ = ["Policy", "Result", "load_policy", "run", "run_seeds"]
_WHERE = {"Policy": "rlbase.policy", "load_policy": "rlbase.policy", "Result": "rlbase.runtime.api", "run": "rlbase.runtime.api",
          "run_seeds": "rlbase.runtime.api"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rlbase' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
