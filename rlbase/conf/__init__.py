"""Configuration: the schemas (``schema.py``) and the option files of each group (``<group>/<option>.yaml``).

An algorithm needs no option file: its config dataclass is the ``algo`` group's option of its name (registered in
:func:`rlbase.conf.schema.register`). Files in ``algo/`` are named variants only (``ddpg_lillicrap``, ``dqn_tutorial``).
"""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parent


def options(group: str) -> list[str]:
    """Every option of a config group (what ``<group>=<option>`` accepts), without importing Hydra or torch: the
    group's files, and for ``algo`` every registered algorithm and variant."""
    names = {p.stem for p in (CONF / group).glob("*.yaml")}
    if group == "algo":
        from rlbase.algos import ALGOS

        names |= set(ALGOS)
    return sorted(names)
