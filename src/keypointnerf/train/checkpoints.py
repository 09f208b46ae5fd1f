"""A run's Lightning checkpoints: written atomically, saved on an interruption only once the run is restored,
and resumed from the newest one that can be read.

Lightning's own writer goes through fsspec's transaction, which stages the file in the system's temporary
folder and *moves* it: across file systems that is a copy, so a full disk there left a 0-byte ``last.ckpt``.
:class:`AtomicCheckpointIO` writes a temporary sibling in the checkpoint's own folder instead (``fileio``).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from ..errors import UserError
from ..fileio import atomic_torch_save
from ..model.checkpoint import safe_torch_load

LAST = "last.ckpt"
_STEP_FILE = re.compile(r"step(\d+)\.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Every checkpoint Lightning saves (``ModelCheckpoint``, ``trainer.save_checkpoint``) replaces its file
    only once it is complete and synced."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by AtomicCheckpointIO")
        atomic_torch_save(checkpoint, path)


class SaveOnInterrupt(Callback):
    """Ctrl-C, SIGTERM or an error: keep the state reached so far in ``last.ckpt`` (``--resume`` reads it).

    Nothing is saved before training has started (the run restored from its checkpoint, optimiser and step
    included) or when no step was taken since: the checkpoints on disk already hold that state, and saving a
    half-restored module would replace them with an untrained one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.start_step: int | None = None
        self.exception: BaseException | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = int(trainer.global_step)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.exception = exception
        if isinstance(exception, UserError):        # a diverged loss keeps the last good checkpoint
            return
        if self.start_step is None or trainer.global_step <= self.start_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)


def read_training_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint of a run (loaded without running code) -> its dict; UserError when the file is
    unreadable or holds no training state (step, optimiser)."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or not {"state_dict", "global_step", "optimizer_states"} <= set(ckpt):
        raise UserError(f"{path}: not a training checkpoint (no step and optimiser state to resume from)")
    return ckpt


def resume_candidates(folder: Path) -> list[Path]:
    """``last.ckpt`` first, then the ``step<N>.ckpt`` files from the highest step down."""
    steps = sorted((p for p in folder.glob("step*.ckpt") if _STEP_FILE.fullmatch(p.name)),
                   key=lambda p: int(_STEP_FILE.fullmatch(p.name).group(1)), reverse=True)
    last = folder / LAST
    return ([last] if last.exists() else []) + steps


def find_resume_checkpoint(folder: Path) -> Path:
    """The newest readable checkpoint of ``folder`` (a run's ``checkpoints/``); says so on stderr when
    ``last.ckpt`` is unusable and an older one is taken. UserError when none can be read."""
    problems = []
    for candidate in resume_candidates(folder):
        try:
            read_training_checkpoint(candidate)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if problems:
            print(f"keypointnerf train: {'; '.join(problems)}; resuming from {candidate.name} instead",
                  file=sys.stderr)
        return candidate
    if not problems:
        raise UserError(f"{folder.parent}: no checkpoints/{LAST} to resume from")
    raise UserError(f"{folder.parent}: no readable checkpoint to resume from ({'; '.join(problems)})")
