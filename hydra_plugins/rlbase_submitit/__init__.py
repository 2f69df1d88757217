"""rlbase's submitit launchers for Hydra (``hydra/launcher=submitit_local`` and ``submitit_slurm`` point here; see
rlbase/conf/schema.py's register_launchers). They live in the hydra_plugins namespace package because Hydra
instantiates launchers from nowhere else; the jobs import the repository's modules through the PYTHONPATH train.py sets.
"""

from __future__ import annotations

import logging

from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _submitit

log = logging.getLogger("sweep")


def _collect_every_job(launcher_class: type) -> type:
    """Hydra's submitit launcher, except that a job whose process died (SIGKILL, out of memory, a node lost) is one
    error line and the launcher goes on waiting for the other jobs; the sweep's summary then lists it as failed
    and the exit code is 1. Hydra's own launcher raises at the first such job, so Hydra prints submitit's
    traceback and stops waiting for the rest."""

    class Launcher(launcher_class):
        def launch(self, job_overrides, initial_job_idx):
            from hydra.core.utils import JobReturn, JobStatus
            from submitit.core import core
            from submitit.core.utils import FailedJobError, UncompletedJobError

            wait = core.Job.results

            def results(job):
                try:
                    return wait(job)
                except UncompletedJobError as e:
                    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
                    why = lines[-1] if isinstance(e, FailedJobError) else lines[0]  # the job's exception; or why none
                    log.error("sweep job %s ended without a result: %s (submitit's logs: %s)", job.job_id, why,
                              job.paths.folder)
                    return [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]

            core.Job.results = results  # only while this launcher waits for its jobs, in this process
            try:
                return super().launch(job_overrides, initial_job_idx)
            finally:
                core.Job.results = wait

    Launcher.__name__ = Launcher.__qualname__ = launcher_class.__name__
    return Launcher


LocalLauncher = _collect_every_job(_submitit.LocalLauncher)
SlurmLauncher = _collect_every_job(_submitit.SlurmLauncher)
