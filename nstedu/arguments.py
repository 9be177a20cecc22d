"""Small helpers of the command line (:mod:`nstedu.cli`) that make every mistake one clear line: negative numbers in
comma lists (``--style-blend -1,2``), counts that cannot be negative, warnings printed as one line, a quiet
Ctrl-C while the program is still starting, and SIGTERM/SIGHUP handled like Ctrl-C (:func:`signals_as_interrupt`:
the best result is kept, the exit status is 128 + the signal's number)."""
from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
import warnings
from typing import Iterator, Sequence

#: A value that argparse would mistake for an option: a minus sign then a digit or a dot ("-1,2", "-1e-3", "-.5").
_NEGATIVE = re.compile(r"^-\.?\d")


def count(option: str):
    """An argparse ``type``: a whole number ≥ 0, with an error naming ``option``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{option} must be a whole number of steps ≥ 0 (0 = never), got {text!r}")
        return value
    return parse


def value_flags(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of ``parser`` that take a value (not flags such as ``--quiet``)."""
    return {s for a in parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}


def join_negative_values(argv: Sequence[str], flags: set[str]) -> list[str]:
    """``["--style-blend", "-1,2"]`` → ``["--style-blend=-1,2"]`` for the options in ``flags``, so that argparse reads
    a negative value as the value (and the option's own check can say what is wrong with it)."""
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok in flags and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}" if tok.startswith("--") else tok + argv[i + 1])
            i += 2
        else:
            out.append(tok)
            i += 1
    return out


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within: every warning is printed as ``PROG: warning: MESSAGE`` (one line, no source line)."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *args, **kwargs: print(
            f"{prog}: warning: {str(message).splitlines()[0]}", file=sys.stderr)
        yield


#: The signals that end a run like Ctrl-C: ``kill``/``timeout``/batch schedulers (SIGTERM), a closed terminal (SIGHUP).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: The signals received by this command (the exit status is 128 + the first one's number).
received: list = []


def exit_quietly_on_interrupt(signum, frame):
    """SIGINT (and SIGTERM, SIGHUP) handler while the ``nstedu`` command is still starting (importing torch): one
    line, exit status 128 + the signal's number."""
    print("nstedu: interrupted while starting", file=sys.stderr)
    raise SystemExit(128 + int(signum))


def _stop(signum, frame):
    """SIGTERM/SIGHUP during a run: recorded, then raised as KeyboardInterrupt, which every command already handles
    (the best result kept); a second one while the result is being saved is only recorded."""
    received.append(int(signum))
    if len(received) == 1:
        raise KeyboardInterrupt


def exit_status(code: int) -> int:
    """A command's exit status: 128 + the signal's number when SIGTERM/SIGHUP ended it (its code is then 130)."""
    return 128 + received[0] if received and code == 130 else code


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP act like Ctrl-C (see :func:`_stop`) unless they are ignored (``nohup``); the previous
    handlers come back after. Only in the main thread (signal handlers can be set nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received.clear()  # a signal ignored on purpose (`nohup` ignores SIGHUP) stays ignored
    saved = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def started() -> None:
    """Ctrl-C raises KeyboardInterrupt again (the commands handle it: best image kept, exit 130)."""
    if signal.getsignal(signal.SIGINT) is exit_quietly_on_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def quiet_start() -> None:
    """When this process is the ``nstedu`` command (``nstedu …`` or ``python -m nstedu …``) starting up, make Ctrl-C,
    SIGTERM and SIGHUP end it with one line and exit status 128 + the signal until :func:`started` (importing torch
    takes seconds). Elsewhere (notebooks, scripts importing nstedu) nothing changes."""
    argv0 = (getattr(sys, "argv", None) or [""])[0]
    command = argv0 == "-m" or argv0.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] in ("nstedu", "nstedu.exe")
    if command and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, exit_quietly_on_interrupt)
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, exit_quietly_on_interrupt)
