"""SIGTERM / SIGINT become a request the loop honours between inner loops.

The handler only records the signal; the loop polls :attr:`StopRequest.signum`
after each inner loop, saves a checkpoint at that step and raises
:class:`~tf_bng.errors.TrainingInterrupted`. A second signal of the
same kind gets the previous handler (Ctrl-C twice still kills at once).

Why not ``tf.distribute.experimental.PreemptionCheckpointHandler``: it
restores the newest checkpoint in its constructor (bypassing the
damaged-checkpoint fallback), saves through its own ``CheckpointManager``
(which prunes without verifying), numbers checkpoints by its ``run()`` calls
rather than by step, adds its own variable to the checkpoint, watches
SIGTERM only, and on GCE CPU VMs declines to work. Its one extra, agreeing
on the step to stop at across workers, is done here by an all-reduce of the
flag (:func:`tf_bng.training.runtime.any_worker`) after each inner loop.
"""

from __future__ import annotations

import signal
import threading

from absl import logging

__all__ = ["StopRequest", "SIGNALS"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _usable(handler):
    """``signal.signal`` returns None for a handler installed from C: use the default then."""
    return signal.SIG_DFL if handler is None else handler


class StopRequest:
    """Context manager installing the handlers; ``signum`` is the first signal seen (or None).

    Outside the main thread (where Python cannot install handlers) it warns and installs
    nothing. Leaving the context restores the previous handlers.

    Args:
        signals: The signals that request a stop (default SIGTERM and SIGINT).
    """

    def __init__(self, signals=SIGNALS):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        del frame
        if self.signum is None:
            self.signum = signum
        # The next one of this kind behaves as it did before the run started.
        signal.signal(signum, _usable(self._previous.get(signum)))

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            logging.warning("Not in the main thread: SIGTERM/SIGINT will not save a checkpoint.")
            return self
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, _usable(handler))
        self._previous.clear()

    @property
    def name(self) -> str:
        """The name of the signal received (``"SIGTERM"``, ``"SIGINT"``), or ``""`` if none."""
        return signal.Signals(self.signum).name if self.signum is not None else ""
