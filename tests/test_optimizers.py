"""nstedu.optimizers: torch.optim's Adam and L-BFGS without the compiler import — the same steps, bit for bit, and
no ``torch._dynamo`` in a fresh interpreter after a whole run with either."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nstedu import optimizers

ROOT = Path(__file__).resolve().parents[1]


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2 + (x[2:] ** 2).sum()


@pytest.mark.parametrize("ours, theirs, kw", [
    (optimizers.Adam, torch.optim.Adam, dict(lr=0.05)),
    (optimizers.LBFGS, torch.optim.LBFGS, dict(lr=1, max_iter=5, history_size=4, line_search_fn="strong_wolfe")),
])
def test_same_steps_as_torch_optim(ours, theirs, kw):
    paths = []
    for cls in (ours, theirs):
        x = torch.tensor([-1.2, 1.0, 0.5, -0.3], requires_grad=True)
        opt = cls([x], **kw)
        sched = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)

        def closure():
            opt.zero_grad()
            loss = rosenbrock(x)
            loss.backward()
            return loss

        path = []
        for _ in range(8):
            opt.step(closure)
            sched.step()
            path.append(x.detach().clone())
        state = opt.state_dict()
        opt.load_state_dict(state)
        paths.append((torch.stack(path), state["param_groups"][0]["lr"]))
    (a, lr_a), (b, lr_b) = paths
    assert torch.equal(a, b) and lr_a == lr_b
    assert float(rosenbrock(a[-1])) < 0.5 * float(rosenbrock(torch.tensor([-1.2, 1.0, 0.5, -0.3])))  # it descends


@pytest.mark.parametrize("optimizer", ["adam", pytest.param("lbfgs", marks=pytest.mark.slow)])  # one in make test
def test_a_whole_run_imports_no_compiler(optimizer):
    code = ("import sys, nstedu; nstedu.run_style_transfer('chelsea', 'starry_night', size=32, steps=3, "
            f"optimizer='{optimizer}', progress=False); print('torch._dynamo' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NSTEDU_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
