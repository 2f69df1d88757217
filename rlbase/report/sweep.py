"""End of a multirun: list failed jobs, write the report (table + curves) into the sweep directory.

Registered as a Hydra callback in conf/config.yaml, so it runs after every ``-m`` sweep, whatever the launcher.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("sweep")


# The command line as the user typed it (rlbase.cli sets it before its rewrites, e.g. of a seed sweep grouped into
# processes); None: sys.argv as Hydra was given it.
COMMAND: list[str] | None = None

def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.rglob(".hydra") if (p / "overrides.yaml").exists())


def summarize(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) job directories of a sweep."""
    jobs = job_dirs(sweep_dir)
    return [j for j in jobs if (j / "done").exists()], [j for j in jobs if not (j / "done").exists()]


# Every job a launcher was handed, by sweep directory (recorded by the joblib guard below), so the summary also
# lists the jobs that never started: they have no directory to find.
_EXPECTED: dict[Path, list[list[str]]] = {}


def not_started(sweep_dir: Path, jobs: list[Path]) -> list[list[str]]:
    """The overrides of the jobs the launcher was given for ``sweep_dir`` that have no recorded run among ``jobs``
    (a job's recorded overrides hold the launcher's, and may add the fitted starts train.py records): jobs that never
    ran, and jobs stopped before their run was accepted (a directory holding only its lock)."""
    recorded = []
    for job in jobs:
        try:
            recorded.append({str(a) for a in OmegaConf.load(job / ".hydra" / "overrides.yaml")})
        except Exception:  # noqa: BLE001 - a damaged file: that job counts as started all the same
            continue
    return [o for o in _EXPECTED.get(sweep_dir, []) if not any(set(o) <= r for r in recorded)]


def _worker_died(e: BaseException) -> bool:
    try:
        from joblib.externals.loky.process_executor import BrokenProcessPool
    except ImportError:  # pragma: no cover - joblib is the launcher's dependency
        return False
    return isinstance(e, BrokenProcessPool)


def _guard_joblib() -> None:
    """Hydra's joblib launcher, except that a worker process that dies (SIGKILL, out of memory, a segfault) is one
    error line instead of joblib's 56-line traceback: loky then stops every job of the batch, so the launcher
    returns empty results, Hydra's end-of-sweep callback runs, and the summary lists every job that did not
    finish, started or not (exit code 1; rerunning the command runs only those). The jobs the launcher is given
    are recorded for that summary. In place while a sweep runs (:meth:`SweepReport.on_multirun_start` to its end)."""
    try:
        from hydra_plugins.hydra_joblib_launcher import _core
    except ImportError:  # the joblib plugin is optional
        return
    if getattr(_core.launch, "_rlbase_original", None) is not None:
        return
    original = _core.launch

    def launch(launcher, job_overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
        _EXPECTED.setdefault(sweep_dir, []).extend([str(a) for a in o] for o in job_overrides)
        try:
            return original(launcher=launcher, job_overrides=job_overrides, initial_job_idx=initial_job_idx)
        except Exception as e:
            if not _worker_died(e):
                raise
            codes = re.search(r"exit codes of the workers are \{([^}]*)\}", str(e))
            how = f"ended with {codes.group(1)}" if codes else "died"
            log.error("a joblib worker process %s (killed, out of memory or crashed) while sweep %s ran; joblib "
                      "stopped every job of its batch (%d jobs): the summary lists those that did not finish",
                      how, sweep_dir, len(job_overrides))
            return [JobReturn(status=JobStatus.COMPLETED, _return_value=None) for _ in job_overrides]

    launch._rlbase_original = original  # type: ignore[attr-defined]
    _core.launch = launch


def _unguard_joblib() -> None:
    core = sys.modules.get("hydra_plugins.hydra_joblib_launcher._core")
    original = getattr(getattr(core, "launch", None), "_rlbase_original", None)
    if original is not None:
        core.launch = original


# The sweep directory of a multirun that started and has not ended: when a launcher raises (submitit, after one of
# its jobs was SIGKILLed), Hydra skips on_multirun_end, and train.cli writes the summary and report with finish().
_OPEN: list[Path] = []


def finish_open_sweeps() -> bool:
    """Summary and report of a sweep whose launcher failed before Hydra's end-of-sweep callback; True if there was one."""
    ended = False
    _unguard_joblib()  # the sweep is over, whichever way it ended
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
        if "joblib" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            _guard_joblib()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir in _OPEN:
            _OPEN.remove(sweep_dir)
        _unguard_joblib()
        self.finish(sweep_dir)

    @classmethod
    def finish(cls, sweep_dir: Path) -> None:
        finished, failed = summarize(sweep_dir)
        missing = not_started(sweep_dir, finished + failed)
        _EXPECTED.pop(sweep_dir, None)
        log.info("sweep %s: %d jobs finished, %d failed or unfinished%s", sweep_dir, len(finished),
                 len(failed) + len(missing), f" ({len(missing)} of them never started)" if missing else "")
        for job in failed:
            try:
                overrides = " ".join(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
            except Exception:  # noqa: BLE001 - a damaged file: the job is still listed, by its directory
                overrides = str(job)
            log.warning("  failed: %s  (log: %s)", overrides, job / "train.log")
        for overrides in missing:
            log.warning("  not started: %s", " ".join(overrides))
        if failed or missing:
            log.warning("rerun the same command to run only these jobs (finished ones are skipped)")
        try:
            cls._report(sweep_dir, finished)
        finally:
            if failed or missing:  # the sweep's exit code says that not every job finished
                raise SystemExit(1)

    @staticmethod
    def _report(sweep_dir: Path, finished: list[Path]) -> None:
        if finished:
            from rlbase.report.plot import main as plot

            try:
                # the report's header names the command that made it: the sweep's own
                plot([str(sweep_dir), "--out", str(sweep_dir / "report")],
                     command=shlex.join(["python", *(COMMAND or sys.argv)]))
                log.info("report: %s", sweep_dir / "report" / "report.md")
            except SystemExit as e:  # no evaluations yet
                log.warning("no report: %s", e)
