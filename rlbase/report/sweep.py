"""End of a multirun: list failed jobs, write the report (table + curves) into the sweep directory.

Registered as a Hydra callback in conf/config.yaml, so it runs after every ``-m`` sweep, whatever the launcher.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("sweep")


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.rglob(".hydra") if (p / "overrides.yaml").exists())


def summarize(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) job directories of a sweep."""
    jobs = job_dirs(sweep_dir)
    return [j for j in jobs if (j / "done").exists()], [j for j in jobs if not (j / "done").exists()]


# The sweep directory of a multirun that started and has not ended: when a launcher raises (submitit, after one of
# its jobs was SIGKILLed), Hydra skips on_multirun_end, and train.cli writes the summary and report with finish().
_OPEN: list[Path] = []


def finish_open_sweeps() -> bool:
    """Summary and report of a sweep whose launcher failed before Hydra's end-of-sweep callback; True if there was one."""
    ended = False
    while _OPEN:
        sweep_dir = _OPEN.pop()
        log.error("the launcher stopped before the end of sweep %s (a job's process died); its summary follows", sweep_dir)
        try:
            SweepReport.finish(sweep_dir)
        except SystemExit:
            pass
        except Exception as e:  # noqa: BLE001 - the report of a broken sweep must not hide why it broke
            log.error("no report for %s: %s", sweep_dir, e)
        ended = True
    return ended


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _OPEN.append(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir in _OPEN:
            _OPEN.remove(sweep_dir)
        self.finish(sweep_dir)

    @classmethod
    def finish(cls, sweep_dir: Path) -> None:
        finished, failed = summarize(sweep_dir)
        log.info("sweep %s: %d jobs finished, %d failed or unfinished", sweep_dir, len(finished), len(failed))
        for job in failed:
            overrides = " ".join(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
            log.warning("  failed: %s  (log: %s)", overrides, job / "train.log")
        if failed:
            log.warning("rerun the same command to run only these jobs (finished ones are skipped)")
        try:
            cls._report(sweep_dir, finished)
        finally:
            if failed:  # the sweep's exit code says that not every job finished
                raise SystemExit(1)

    @staticmethod
    def _report(sweep_dir: Path, finished: list[Path]) -> None:
        if finished:
            from rlbase.report.plot import main as plot

            try:
                # the report's header names the command that made it: the sweep's own
                plot([str(sweep_dir), "--out", str(sweep_dir / "report")], command=shlex.join(["python", *sys.argv]))
                log.info("report: %s", sweep_dir / "report" / "report.md")
            except SystemExit as e:  # no evaluations yet
                log.warning("no report: %s", e)
