"""torch.optim's Adam and L-BFGS, unchanged, minus a second of start-up.

Since torch 2.x the first call of ``Optimizer.add_param_group`` / ``zero_grad`` / ``state_dict`` /
``load_state_dict`` (``@torch._disable_dynamo``) and of ``Adam.step`` (its graph breaks) imports ``torch._dynamo``,
the compiler — about 1 s on a 2-core CPU, a third of a small CLI run, for a step that is never compiled here.
These subclasses call the same methods without that wrapper (``__wrapped__``: the function the decorator
received), so the arithmetic is torch's own; where a torch version has no such wrapper the method is used as is.
``tests/test_optimizers.py`` checks they take the same steps as ``torch.optim`` and import no compiler.
"""
from __future__ import annotations

import torch


def _unwrapped(cls: type, name: str):
    method = getattr(cls, name)
    return getattr(method, "__wrapped__", method)


class _WithoutCompilerImport:
    add_param_group = _unwrapped(torch.optim.Optimizer, "add_param_group")
    zero_grad = _unwrapped(torch.optim.Optimizer, "zero_grad")
    state_dict = _unwrapped(torch.optim.Optimizer, "state_dict")
    load_state_dict = _unwrapped(torch.optim.Optimizer, "load_state_dict")


class Adam(_WithoutCompilerImport, torch.optim.Adam):
    """:class:`torch.optim.Adam`; ``step`` under ``no_grad`` as its decorator does for ``differentiable=False``."""

    step = torch.no_grad()(_unwrapped(torch.optim.Adam, "step"))


class LBFGS(_WithoutCompilerImport, torch.optim.LBFGS):
    """:class:`torch.optim.LBFGS` (its ``step`` has no compiler wrapper)."""
