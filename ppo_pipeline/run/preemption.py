"""Preemption and Ctrl-C: finish the update in flight, checkpoint, then hand the signal on.

A signal can land anywhere inside an update, where the state is half-way (some Adam steps taken,
part of a batch collected). Inside ``with DeferredSignals(...)`` the signal is only recorded; at the
end of the update the trainer writes a checkpoint and calls :meth:`DeferredSignals.deliver`, which
hands each signal received to the handler that was installed before:

* under SLURM, submitit's SIGUSR2 handler calls ``checkpoint()`` of the job's
  :class:`~submitit.helpers.Checkpointable`, requeues the job and exits;
* submitit's SIGTERM handler ignores the signal, so training goes on (with a fresh checkpoint);
* where no Python handler was installed before (or Python's Ctrl-C default),
  :class:`TrainingInterrupted` is raised.

A second Ctrl-C does not wait for the update to end (the newest checkpoint stays valid).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class TrainingInterrupted(RuntimeError):
    """A signal asked the run to stop; a checkpoint of the last finished update was written first."""

    def __init__(self, signum: int, update: int, path: Path):
        self.signum, self.update, self.path = signum, update, path
        super().__init__(f"{signal.Signals(signum).name} received: stopped after update {update}, checkpoint {path}")


class DeferredSignals:
    """Context manager: while inside, the signals ``signums`` are recorded instead of acted on.

    ``on_signal(signum)`` runs once per signal as it arrives (to tell the user at once that the run
    will stop after the update in flight). Must be entered from the main thread.
    """

    def __init__(self, signums: Sequence[int], on_signal: Callable[[int], None] | None = None):
        self.signums = tuple(int(s) for s in signums)
        self.on_signal = on_signal
        self.received: tuple[int, ...] = ()
        self._previous: dict[int, Any] = {}

    @property
    def pending(self) -> bool:
        return bool(self.received)

    def _defer(self, signum: int, frame: Any) -> None:
        if signum not in self.received:
            self.received += (signum,)
            if self.on_signal is not None:
                self.on_signal(signum)
            return
        if signum != signal.SIGINT:  # SLURM may deliver a signal twice: one is enough
            return
        # a second Ctrl-C does not wait for the update to end
        handler = self._previous.get(signum)
        self._restore()
        if callable(handler):
            handler(signum, frame)
        else:
            signal.raise_signal(signum)

    def __enter__(self) -> DeferredSignals:
        self._previous = {s: signal.signal(s, self._defer) for s in self.signums}
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()
        self.received = ()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def deliver(self, update: int, saved: Path) -> None:
        """After the checkpoint ``saved`` of ``update``: hand each signal received to the handler that
        was there before. Returns when all of them returned (training goes on), else raises."""
        received, self.received = self.received, ()

        def foreign(signum: int) -> bool:
            handler = self._previous.get(signum)
            return callable(handler) and handler is not signal.default_int_handler

        for signum in sorted(received, key=lambda s: not foreign(s)):  # handlers first, then stop
            if foreign(signum):
                # SLURM signals every process of the job step, sometimes twice: while the handler runs
                # (and in the `scontrol requeue` it starts, which inherits the disposition) ignore it
                signal.signal(signum, signal.SIG_IGN)
                self._previous[signum](signum, None)  # submitit USR2: checkpoint() + requeue + sys.exit
                signal.signal(signum, self._defer)  # it returned: training goes on
            else:
                raise TrainingInterrupted(signum, update, saved)
