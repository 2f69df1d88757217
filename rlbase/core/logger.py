"""One logger for every run: a local ``metrics.jsonl`` always, Weights & Biases and TensorBoard when configured.

Every row carries ``step`` (environment steps), the x-axis of every metric. Keys are sectioned:
``train/``, ``eval/``, ``loss/``, ``time/``. The local file makes a run useful without W&B: plots
and tests read it directly. ``logger.tensorboard=true`` writes every numeric value of every row as TensorBoard
events in ``<run_dir>/tb`` (global step: the row's step), beside W&B or without it (``logger=tensorboard``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import os
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from rlbase.core.settings import KEY, Allowed, positive

log = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")
TB_DIR = "tb"  # TensorBoard event files, under the run directory: `tensorboard --logdir runs/` shows every run


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


TENSORBOARD_MISSING = ("needs the tensorboard package, which is not installed; install it with "
                       "`pip install -r requirements.txt` (or `pip install tensorboard`)")


@dataclasses.dataclass(frozen=True)
class _NeedsTensorBoard(Allowed):
    """What ``logger.tensorboard`` allows: true only where the tensorboard package is installed (the one generic
    validator, :func:`rlbase.core.settings.check`, refuses it in one line before the run starts)."""

    choices: Optional[tuple] = (False, True)  # checked as a choice: booleans without choices are not checked

    def ok(self, v: Any) -> bool:
        return not v or tensorboard_installed()

    def message(self, name: str, v: Any) -> str:
        return f"{name}=true {TENSORBOARD_MISSING}"


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none (metrics.jsonl is written either way)
    mode: str = "offline"  # offline | online | disabled (W&B mode)
    project: str = "rlbase"  # W&B project
    entity: Optional[str] = None  # W&B entity (team or user); None: the account's default
    group: Optional[str] = None  # W&B group; None: <algo>-<env>
    tags: list[str] = field(default_factory=list)  # extra tags (algo, env and seed are always added)
    init_timeout: float = positive(30.0)  # seconds wandb.init may wait in online mode
    artifacts: bool = False  # at the end of a run, log its checkpoint (and a recorded dataset) as W&B artifacts
    # also write every logged scalar as TensorBoard events in <run_dir>/tb (needs the tensorboard package)
    tensorboard: bool = field(default=False, metadata={KEY: _NeedsTensorBoard()})


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item()
    return v


def scan_metrics(path: str | Path) -> tuple[list[dict], list[tuple[int, str]]]:
    """The rows of a ``metrics.jsonl`` and its damaged lines as (line number, text): a line that is not a JSON
    object with an integer ``step`` (a torn last line after a hard kill, a damaged disk block) is set apart,
    never dropped silently, and the rows after it are still read."""
    path = Path(path)
    if not path.exists():
        return [], []
    rows, damaged = [], []
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
        else:
            damaged.append((i, line))
    return rows, damaged


def read_metrics(path: str | Path, warn: bool = True) -> list[dict]:
    rows, damaged = scan_metrics(path)
    if damaged and warn:
        lines = ", ".join(str(i) for i, _ in damaged[:5]) + (", ..." if len(damaged) > 5 else "")
        log.warning("%s: skipped %d damaged line(s) (line %s)", path, len(damaged), lines)
    return rows


class BelowWarning(logging.Filter):
    """Lets through records below WARNING: the console's stdout handler shows progress, its stderr handler the
    warnings and errors (conf/config.yaml's hydra.job_logging), so ``2>`` catches every problem a run reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class Logger:
    def __init__(self, cfg: LoggerConfig, run_dir: str | Path, *, config: dict, group: str, name: str,
                 tags: list[str], run_id: Optional[str] = None, resume_step: Optional[int] = None,
                 job_type: str = "train"):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        if resume_step is not None:
            # Drop rows written after the checkpoint we resume from, so steps never repeat. Lines that cannot be
            # read are kept aside in metrics.damaged.jsonl, never deleted.
            rows, damaged = scan_metrics(self.path)
            if damaged:
                with open(self.run_dir / "metrics.damaged.jsonl", "a") as f:
                    f.write("".join(text + "\n" for _, text in damaged))
                log.warning("%s: %d damaged line(s) moved to metrics.damaged.jsonl", self.path, len(damaged))
            rows = [r for r in rows if r["step"] <= resume_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
            tmp.replace(self.path)
        self._file = open(self.path, "a", buffering=1)
        self.run = None
        self.run_id = run_id
        self.tb = None  # torch.utils.tensorboard.SummaryWriter with logger.tensorboard=true
        self._wandb_env: dict[str, str] = {}  # W&B directories this logger pointed into the run directory
        try:
            if getattr(cfg, "tensorboard", False):
                self.tb = _open_tensorboard(self.run_dir / TB_DIR, resume_step, self.path)
        except BaseException:
            self._file.close()
            raise
        if cfg.backend == "wandb" and cfg.mode != "disabled":
            try:
                self._init_wandb(cfg, config, group, name, tags, run_id, job_type)
            except BaseException as e:
                self._file.close()
                self._close_tensorboard()
                if isinstance(e, OSError):  # a full disk or a read-only directory: leave no W&B process behind
                    import wandb

                    try:
                        wandb.teardown()
                    except Exception:  # noqa: BLE001 - it may have failed for the same reason
                        pass
                self._restore_env()
                raise
            if resume_step is not None:
                self._relog_unsaved(resume_step)

    def _init_wandb(self, cfg, config, group, name, tags, run_id, job_type) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb_env = wandb_dirs(self.run_dir)  # before W&B's service starts: it reads them once
        import wandb

        if cfg.mode == "online" and not has_wandb_key():
            raise RuntimeError("logger.mode=online needs a W&B API key (set WANDB_API_KEY or run `wandb login`); "
                               "use logger.mode=offline to log locally")
        self.run_id = run_id or _new_run_id()
        # create_new: several runs in one process (seeds trained together, rlbase/loops/seeds.py) each get their own
        settings = wandb.Settings(init_timeout=cfg.init_timeout, console="off", silent=True, reinit="create_new")
        kwargs = dict(project=cfg.project, entity=cfg.entity, group=cfg.group or group, name=name,
                      tags=sorted(set(tags) | set(cfg.tags)), config=config, dir=str(self.run_dir),
                      id=self.run_id, resume="allow", job_type=job_type, settings=settings)
        mode = cfg.mode
        if mode == "online":
            why = _unreachable(min(5.0, cfg.init_timeout))
            if why:  # seconds, not init_timeout's wait, and no half-made online run in W&B's service
                log.warning("W&B server unreachable (%s); logging offline instead, sync later with `wandb sync`", why)
                mode = "offline"
        try:
            self.run = wandb.init(mode=mode, **kwargs)
        except Exception as e:  # online init failed all the same: keep the run, log offline
            if mode != "online":
                raise
            log.warning("W&B init failed (%s); logging offline instead, sync later with `wandb sync`", str(e).splitlines()[0])
            wandb.teardown()  # the failed online run still holds its id in W&B's service
            self.run = wandb.init(mode="offline", **kwargs)
        (self.run_dir / "wandb_run.json").write_text(json.dumps(
            {"id": self.run_id, "project": cfg.project, "group": kwargs["group"], "name": name, "tags": kwargs["tags"],
             "job_type": job_type, "mode": self.run.settings.mode}) + "\n")
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def _relog_unsaved(self, resume_step: int) -> None:
        """Log again, in this resumed segment, the rows up to the checkpoint that no earlier segment's ``.wandb``
        file holds: a SIGKILL cuts that file at its last written block (up to 32 KiB of rows), and those rows would
        otherwise be missing after ``wandb sync`` although ``metrics.jsonl`` has them. A row the server already
        has is dropped by it (its step is not above the run's highest), so logging too much never duplicates."""
        current = Path(self.run.dir).parent
        saved = -1
        for f in self.run_dir.glob(f"wandb/*run-*/run-{self.run_id}.wandb"):  # this run's segments, no other id's
            if f.parent == current:
                continue
            try:
                saved = max([saved, *(int(r.get("step", r.get("_step", -1))) for r in wandb_history(f))])
            except Exception:  # noqa: BLE001 - an unreadable segment holds nothing we can count on
                continue
        rows = [r for r in read_metrics(self.path, warn=False) if saved < r["step"] <= resume_step]
        for r in rows:
            self.run.log({k: v for k, v in r.items() if not isinstance(v, str)}, step=r["step"])
        if rows:
            log.info("W&B: logged again %d row(s), steps %d-%d, that the stopped segment had not saved",
                     len(rows), rows[0]["step"], rows[-1]["step"])

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": int(step)}
        for k, v in metrics.items():
            v = _scalar(v)
            if self.tb is not None and isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, row["step"])  # a non-finite value too: TensorBoard shows it as such
            row[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        self._file.write(json.dumps(row) + "\n")
        if self.run is not None:
            # W&B's own step is the env step (not a count of log calls): a resumed segment then continues the
            # run's history where the checkpoint left it, and the server, which keeps a row only if its step is
            # above the highest it has, drops exactly the rows the killed segment had already sent.
            self.run.log(row, step=row["step"])

    def video(self, step: int, key: str, path: Path, fps: int) -> None:
        self._file.write(json.dumps({"step": int(step), key: str(path)}) + "\n")
        if self.run is not None:
            import wandb

            self.run.log({"step": int(step), key: wandb.Video(str(path), fps=fps)}, step=int(step))

    def artifact(self, name: str, kind: str, paths: list[Path], metadata: Optional[dict] = None) -> None:
        """Log files as one W&B artifact (stored with the offline run and uploaded by ``wandb sync``)."""
        if self.run is None:
            return
        import wandb

        art = wandb.Artifact(name, type=kind, metadata=metadata or {})
        for p in paths:
            art.add_file(str(p))
        self.run.log_artifact(art)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            for k, v in values.items():
                self.run.summary[k] = _scalar(v)

    def _close_tensorboard(self) -> None:
        if self.tb is not None:
            tb, self.tb = self.tb, None
            try:
                tb.close()  # writes what its queue holds, ends its writer thread
            except OSError as e:  # a full disk: what was written before stays readable
                log.warning("could not finish the TensorBoard events in %s: %s", self.run_dir / TB_DIR, e.strerror or e)

    def _restore_env(self) -> None:
        for k, v in self._wandb_env.items():  # the next run in this process decides for itself
            if os.environ.get(k) == v:
                del os.environ[k]
        self._wandb_env = {}

    def close(self, exit_code: int = 0) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # a full disk: the row that could not be written is reported by the caller's error
                pass
        self._close_tensorboard()
        if self.run is not None:
            run, self.run = self.run, None
            try:
                run.finish(exit_code=exit_code)
            finally:
                self._restore_env()
            if run.settings.mode == "offline":
                log.info("W&B offline run saved in %s; upload it with `wandb sync %s`", run.dir, Path(run.dir).parent)


def wandb_history(path: str | Path) -> list[dict[str, Any]]:
    """The history rows (``_step``, ``step`` and the logged keys) stored in one ``run-<id>.wandb`` file, read
    without a server: the file is W&B's record log (a 7-byte header, then 32 KiB blocks of records that may span
    blocks: full, first, middle, last), each record a ``wandb_internal_pb2.Record``. A file cut by a hard kill
    ends at its last whole record."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B record log")
    rows, pos, block, pending = [], 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # the file was cut inside this record
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind not in (1, 4):
            continue
        record = pb.Record()
        try:
            record.ParseFromString(pending)
        except Exception:  # noqa: BLE001 - a damaged record: what came before it is what the file holds
            break
        pending = b""
        if record.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def wandb_dirs(run_dir: Path) -> dict[str, str]:
    """Point W&B's own directories that the user has not set and that cannot be written where W&B puts them by
    default (a read-only or missing HOME) into ``<run_dir>/wandb``, and return the variables set. W&B's service
    writes its logs to the cache directory; where that cannot be made it writes them to the console (16 lines a
    run). Where the defaults can be written nothing changes: the artifact cache stays shared and a settings file
    (``wandb login --host``) stays read. The run itself goes to ``<run_dir>/wandb`` either way (``wandb.init(dir=)``)."""
    import platformdirs

    config = Path("~", ".config", "wandb").expanduser()  # W&B's own default, not platformdirs'
    defaults = {"WANDB_CACHE_DIR": Path(platformdirs.user_cache_dir("wandb")),  # also the service's logs/
                "WANDB_DATA_DIR": Path(platformdirs.user_data_dir("wandb")),  # artifact staging
                "WANDB_CONFIG_DIR": config}
    done = {}
    for var, default in defaults.items():
        if os.environ.get(var) or _can_write(default):
            continue
        if var == "WANDB_CONFIG_DIR" and os.access(default / "settings", os.R_OK):
            continue  # read-only but readable: W&B only reads its settings during a run
        os.environ[var] = done[var] = str(run_dir / "wandb" / var.removeprefix("WANDB_").removesuffix("_DIR").lower())
    return done


def _can_write(path: Path) -> bool:
    """Whether ``path`` is, or could be made as, a writable directory (its nearest existing ancestor is one)."""
    try:
        path = path.absolute()
    except OSError:
        return False
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _open_tensorboard(tb_dir: Path, resume_step: Optional[int], rows_path: Path):
    """A SummaryWriter on ``tb_dir``. On a resume from the checkpoint at ``resume_step`` its first event purges
    (``purge_step``) every step from ``p = min(highest step the event files hold, resume_step)`` on, and the rows of
    ``metrics.jsonl`` in [p, resume_step] are written again: the steps a stopped segment logged after its checkpoint
    never show twice, and those its writer had not flushed when it was killed are not lost."""
    if not tensorboard_installed():
        raise RuntimeError(f"logger.tensorboard=true {TENSORBOARD_MISSING}")
    from torch.utils.tensorboard import SummaryWriter

    purge, again = None, []
    if resume_step is not None:
        saved, newest = tensorboard_saved(tb_dir)
        purge = max(min(saved, resume_step), 0)
        again = [r for r in read_metrics(rows_path, warn=False) if purge <= r["step"] <= resume_step]
        # Readers take event files in name order, and a name starts with its second: this segment's file must sort
        # after the last one's, so that its purge comes after what it purges.
        deadline = time.monotonic() + 1.5
        while int(time.time()) <= newest and time.monotonic() < deadline:
            time.sleep(0.05)
    writer = SummaryWriter(log_dir=str(tb_dir), purge_step=purge, flush_secs=30)
    try:
        for r in again:
            for k, v in r.items():
                if k != "step" and isinstance(v, (int, float)):
                    writer.add_scalar(k, v, r["step"])
    except BaseException:
        writer.close()
        raise
    if again:
        log.info("TensorBoard: logged again %d row(s), steps %d-%d, that the event files did not hold",
                 len(again), again[0]["step"], again[-1]["step"])
    return writer


def tensorboard_saved(tb_dir: str | Path) -> tuple[int, int]:
    """The highest step of a scalar that the event files in ``tb_dir`` hold once each file's purge (a resumed
    segment's first event) is applied, -1 if none; and the second in the newest file's name (0 if none). Files are
    read in name order, as TensorBoard reads them; a file cut by a hard kill ends at its last whole record."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    saved, newest = -1, 0
    for f in sorted(Path(tb_dir).glob("events.out.tfevents.*")):
        try:
            newest = max(newest, int(f.name.split(".")[3]))
        except (IndexError, ValueError):
            pass
        try:
            for event in EventFileLoader(str(f)).Load():
                if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                    saved = min(saved, event.step - 1)  # purges every step from event.step on
                elif event.HasField("summary") and len(event.summary.value):
                    saved = max(saved, event.step)
        except Exception:  # noqa: BLE001 - a damaged file: what came before the damage is what it holds
            continue
    return saved, newest


def _new_run_id() -> str:
    # secrets, not random: never consumes the seeded RNG streams.
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def _unreachable(timeout: float) -> str:
    """Why W&B's server cannot be reached (a TCP connection to WANDB_BASE_URL, default api.wandb.ai:443), or ''."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host}:{port}: {e.strerror or e}"
    return ""


def has_wandb_key() -> bool:
    return bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
