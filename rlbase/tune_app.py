"""The Hydra app that starts the workers of ``scripts/tune.py --workers N`` through a Hydra launcher (joblib,
submitit_local, submitit_slurm): ``python -m rlbase.tune_app --multirun worker=range(N) hydra/launcher=<name>
hydra.sweep.dir=<study>/launch/<time>_<pid> [hydra.launcher.<key>=<value> ...]``, composed from
``rlbase/conf/tune_launch.yaml``. Each job runs :func:`rlbase.tune.work`: the command line recorded in the sweep
directory's ``launch.json``, worked on the study in the job's process. ``rlbase.tune.launch`` starts it and reads
each worker's ``worker<i>/result.json``; it is not meant to be run by hand.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="tune_launch")
def work(cfg: DictConfig) -> int:
    from hydra.core.hydra_config import HydraConfig

    from rlbase import tune

    hc = HydraConfig.get()
    return tune.work(Path(hc.sweep.dir), int(cfg.worker), Path(hc.runtime.output_dir))


def main() -> None:
    from rlbase.conf.schema import register

    register()  # hydra/launcher=submitit_* as rlbase's launchers; hardware=slurm's launcher settings
    # SIGTERM reaches the local jobs too (scripts/tune.py sends it to this process group): they stop their trials,
    # and this process waits for their results. A handler, not SIG_IGN: the jobs' processes start with the default.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing a traceback: one line here instead
    try:
        work()
    except Exception as e:  # noqa: BLE001 - the launcher's (e.g. joblib's pool broken by a worker's death)
        why = next((line.strip() for x in (e, e.__cause__) if x is not None for line in str(x).splitlines()
                    if line.strip()), "")
        print(f"error: the launcher: {type(e).__name__}{': ' + why if why else ''}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
