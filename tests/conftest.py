import os
import signal

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NSTEDU_OFFLINE", "1")


# A shell that starts a command in the background without job control (`(make test &)`) leaves SIGINT ignored, and
# nohup SIGHUP; every process started from here would inherit that, and nstedu rightly leaves an ignored signal
# ignored: the Ctrl-C tests would hang and the SIGHUP test fail. The tests run as if started from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def vgg():
    from nstedu.vgg import get_vgg

    return get_vgg("caffe", "cpu", "max")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def small_pair():
    """A small content photo and style painting as PIL images (64 px)."""
    from nstedu import samples

    return samples.load("chelsea", 64), samples.load("starry_night", 64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny video frames: on a shared 2-core machine one thread runs them several times faster than two
    (``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` in a module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
