"""The command line's options that come from settings: every :class:`~nstedu.config.TransferConfig` field (``nstedu
stylize``, ``nstedu batch``) or :class:`~nstedu.fast.FastConfig` field (``nstedu fast-train``) with ``cli=True`` becomes
an option (name, type, default, help), and :func:`options_markdown` writes them as README.md's table. Also the
parsers of option values (comma-separated numbers and names, fractions and percentages)."""
from __future__ import annotations

import argparse
import typing
from dataclasses import fields

from .config import CONTROL, NETWORK, OPTIMIZATION, OUTPUT, WEIGHTS, TransferConfig

GROUPS = (OUTPUT, WEIGHTS, NETWORK, OPTIMIZATION, CONTROL)  # the order of the option groups in --help


# ------------------------------------------------------------------------------------------ option values
def _numbers(kind):
    def parse(text: str) -> list:
        what = "whole numbers" if kind is int else "numbers"
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        if any(not v >= 0 for v in values):  # also NaN
            raise argparse.ArgumentTypeError(f"expected comma-separated {what} ≥ 0, got {text!r}")
        return values
    return parse


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _fraction(text: str) -> float:
    try:
        v = float(text[:-1]) / 100.0 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction 0–1 or a percentage like 60%, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"style strength must be 0–1 or 0%–100%, got {text!r}")
    return v


# ---------------------------------------------------------------------------- options from config fields
def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_options(cls=TransferConfig) -> list[tuple]:
    """``(field, flags, argparse keywords, help, default as text)`` for every field of ``cls`` on the command line."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        m = f.metadata
        if not m.get("cli", False):
            continue
        flags = m["flags"] or (f"--{f.name.replace('_', '-')}",)
        kind, typ = m["kind"], hints[f.name]
        if type(None) in typing.get_args(typ):  # Optional[X] -> X
            typ = next(t for t in typing.get_args(typ) if t is not type(None))
        help_ = m["cli_help"] or m["help"]
        kw, default = dict(dest=f.name, default=f.default), ""
        if kind == "negate" or typ is bool:
            kw.update(action="store_false" if kind == "negate" else "store_true")
        else:
            item = typing.get_args(typ)[0] if typing.get_origin(typ) is not None else None
            kw.update(type=_fraction if kind == "fraction" else _names if item is str else
                      _numbers(item) if item is not None else typ, metavar=m["metavar"], choices=m["choices"])
            default = _show(f.default) if f.default is not None else m["default_text"] or ""
        out.append((f, flags, kw, help_, default))
    return out


def add_config_arguments(p: argparse.ArgumentParser, cls=TransferConfig) -> None:
    """Add an option for every exposed field of ``cls``, in groups (see :func:`config_options`)."""
    groups = {g: p.add_argument_group(g) for g in GROUPS}
    for f, flags, kw, help_, default in config_options(cls):
        help_ += f" (default {default})" if default else ""
        groups[f.metadata["group"]].add_argument(*flags, help=help_.replace("%", "%%"), **kw)


def config_from_args(args, cls=TransferConfig) -> dict:
    """The ``cls`` fields set by :func:`add_config_arguments`, as keywords (lists become tuples)."""
    values = {f.name: getattr(args, f.name) for f, *_ in config_options(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def options_markdown(cls=TransferConfig) -> str:
    """The options of ``cls`` as a Markdown table (README.md's, checked by the tests)."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for f, flags, kw, help_, default in config_options(cls):
        meta = kw.get("metavar") or ("{" + ",".join(kw["choices"]) + "}" if kw.get("choices") else "")
        option = ", ".join(f"`{flag}{' ' + meta if meta and i == 0 else ''}`" for i, flag in enumerate(flags))
        rows.append(f"| {option} | {default} | {help_} |")
    return "\n".join(rows)
