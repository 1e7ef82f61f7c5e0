"""Stop a sending loop between two sends, never in the middle of one.

Ctrl-C raises ``KeyboardInterrupt`` wherever Python happens to be; in the middle of a producer's ``send`` the
message may already be queued for delivery while the loop has not counted it yet. Inside
:class:`StopBetweenSends`, a SIGINT or SIGTERM that arrives while ``sending`` is set waits until :meth:`sent`
says the send is over; one that arrives between sends (during pacing, say) stops at once, and a second one
during a send that takes long (a producer waiting for a cluster that is away) stops at once too. The stop is
what the process's own handler does (``KeyboardInterrupt`` for Ctrl-C; ``fusewatch``'s SIGTERM exits with
143). Signal handlers can only be set in the main thread; elsewhere the class does nothing.

>>> import os, signal
>>> stops = []
>>> before = signal.signal(signal.SIGINT, lambda signum, frame: stops.append(signum))  # the process's handler
>>> with StopBetweenSends() as stop:
...     stop.sending = True
...     os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of a send: held back
...     held_back = stops == []
...     stop.sent()  # the send is over: the process's handler runs now
>>> held_back, stops == [signal.SIGINT]
(True, True)
>>> _ = signal.signal(signal.SIGINT, before)
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopBetweenSends:
    """Holds Ctrl-C and SIGTERM back while ``sending`` is set (see the module)."""

    def __init__(self) -> None:
        self.sending = False
        self._held: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopBetweenSends:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.sending and self._held is None:
            self._held = signum
            return
        self._stop(signum)

    def sent(self) -> None:
        """The send is over: stop now if a signal was held back meanwhile."""
        self.sending = False
        if self._held is not None:
            signum, self._held = self._held, None
            self._stop(signum)

    def _stop(self, signum: int) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, None)  # Ctrl-C's KeyboardInterrupt, fusewatch's SIGTERM exit
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)  # what the default action would have ended the process with
