"""SIGTERM and SIGINT as a request, not a crash: a scheduler's pre-emption or a Ctrl-C must cost at most the
step in flight, so the loop saves a checkpoint after that step and exits (docs/reliability.md, "Signals")."""
from __future__ import annotations

import os
import signal


class SignalGuard:
    """Turn SIGTERM/SIGINT into a flag the loop checks between steps, so it can save and exit cleanly."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: stop now, without the checkpoint
            raise KeyboardInterrupt
        self.received = signum
        try:
            os.write(2, f"\nreceived {signal.Signals(signum).name}: saving a checkpoint after this step "
                        f"(send it again to stop at once)\n".encode())
        except OSError:  # stderr is a pipe whose reader died with the same Ctrl-C; the checkpoint matters more
            pass

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
