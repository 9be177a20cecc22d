"""Stopping a long video run cleanly, whatever asks it to stop: Ctrl-C (SIGINT), ``kill`` or a batch scheduler's
time limit (SIGTERM), a closed terminal or SSH session (SIGHUP).

    @stop_signals()                # SIGTERM and SIGHUP raise KeyboardInterrupt, like Ctrl-C, while the run works
    def stylize_video(...):
        try: …
        except KeyboardInterrupt:
            with shielded():       # a second Ctrl-C or SIGTERM waits: the partial output is written whole
                …

:func:`nstedu.video.stylize_video` handles a KeyboardInterrupt by closing its open segment and joining the finished
ones into a playable file. :func:`stop_signals` makes SIGTERM and SIGHUP take the same path; when one did, it is
delivered again (with its previous handler, by default the end of the process) once the function has returned, so a
script looping over clips still stops as the sender asked. :func:`shielded` holds a second signal, sent while the
partial file is being written, until that writing is done (whoever handles it otherwise: the ``nstedu`` command
has its own SIGTERM and SIGHUP handler, which :func:`stop_signals` leaves alone). An ignored signal stays ignored
(``nohup`` ignores SIGHUP). Signal handlers exist only in the main thread: elsewhere both do nothing.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

#: The signals that end a run like Ctrl-C.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Everything that asks a run to stop: what :func:`shielded` holds off.
ALL_SIGNALS = (signal.SIGINT,) + STOP_SIGNALS


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_signals() -> Iterator[list]:
    """Within: SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` (the clean-up that handles it holds off the
    next ones with :func:`shielded`). Yields the list of the signals received. On leaving, the previous handlers
    come back and a SIGTERM/SIGHUP that stopped the run is raised again. Usable as a decorator."""
    received: list = []

    def stop(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {}
    if _in_main_thread():   # only handlers Python or the system would use: SIGINT's, and the default (to die)
        for sig in ALL_SIGNALS:
            default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            if signal.getsignal(sig) is default:
                saved[sig] = signal.signal(sig, stop)
    try:
        yield received
    finally:
        _restore(saved, [sig for sig in received if sig in saved])


@contextlib.contextmanager
def shielded() -> Iterator[list]:
    """Within: SIGINT, SIGTERM and SIGHUP are noted on stderr and held, so that a clean-up completes; on leaving,
    the previous handlers come back (ignored signals stay ignored) and a SIGTERM or SIGHUP held is raised again
    (a second Ctrl-C is dropped: the run is stopping already). Yields the list of the signals held."""
    held: list = []

    def hold(signum, frame):
        held.append(signum)
        print(f"nstedu: {signal.Signals(signum).name}: still saving the frames done; one moment", file=sys.stderr)

    saved = {}
    if _in_main_thread():
        for sig in ALL_SIGNALS:
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                saved[sig] = signal.signal(sig, hold)
    try:
        yield held
    finally:
        _restore(saved, held)


def _restore(saved: dict, received: list) -> None:
    """Put the ``saved`` handlers back; then raise again the first SIGTERM/SIGHUP of ``received``: the files are
    written, so the process now ends as the sender asked (by default)."""
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    again = next((sig for sig in received if sig in STOP_SIGNALS), None)
    if again is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.raise_signal(again)
