"""The fast style-transfer network (Johnson et al. 2016), its model files and inference: one forward pass per
photo, no VGG-19 at all. Training is in :mod:`nstedu.fast.training`.

    image = FastStylizer.load("starry_night")("photo.jpg")            # shipped model -> PIL.Image
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..env import check_size_fits, resolve_device
from ..images import ImageLike, fit_longest, pil_to_tensor, resize_longest, tensor_to_pil
from ..outputs import write_or_rescue
from ..samples import load_content
from ..vgg import WeightsError

FORMAT = "nstedu-fast-style"
MODELS_DIR = Path(__file__).parent.parent / "models"


# ----------------------------------------------------------------------------------------------- network
class ConvLayer(nn.Sequential):
    """Reflection pad + conv (+ instance norm + ReLU); ``upsample=2`` puts a nearest-neighbour ×2 resize first,
    which avoids the checkerboard artefacts of transposed convolutions (Odena et al., 2016)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int = 1, norm_relu: bool = True):
        layers = [nn.Upsample(scale_factor=upsample, mode="nearest")] if upsample > 1 else []
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm_relu:
            layers += [nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) — two 3×3 convolutions with a skip connection (He et al., 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3),
                                  nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x):
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network: 9×9 conv, two stride-2 convs, ``res_blocks`` residual
    blocks, two upsample+conv layers, 9×9 conv to RGB. Channels: ``width``, 2·width, 4·width (paper: 32).

    ``forward(x)``: float tensor ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, H, W)`` (unclamped; clamp to show).
    Any H, W works: the input is padded to a multiple of 4 (at least 8) and the output cropped back.
    """

    def __init__(self, width: int = 16, res_blocks: int = 5):
        super().__init__()
        if width < 1 or res_blocks < 0:
            raise ValueError(f"width must be ≥ 1 and res_blocks ≥ 0, got width={width}, res_blocks={res_blocks}")
        self.width, self.res_blocks = width, res_blocks
        w = width
        self.net = nn.Sequential(
            ConvLayer(3, w, 9), ConvLayer(w, 2 * w, 3, stride=2), ConvLayer(2 * w, 4 * w, 3, stride=2),
            *[ResidualBlock(4 * w) for _ in range(res_blocks)],
            ConvLayer(4 * w, 2 * w, 3, upsample=2), ConvLayer(2 * w, w, 3, upsample=2),
            ConvLayer(w, 3, 9, norm_relu=False))

    @property
    def config(self) -> dict:
        return {"width": self.width, "res_blocks": self.res_blocks}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
        if ph or pw:  # replicate works for any size (reflect needs pad < size)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        y = self.net(x)
        return y[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]


def init_net(width: int = 16, res_blocks: int = 5, seed: int = 0) -> TransformerNet:
    """A freshly initialized network, seeded without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TransformerNet(width, res_blocks)


# ----------------------------------------------------------------------------------------------- files
def _atomic_save(obj, path: Path) -> None:
    """Write atomically; if the disk refuses, the model goes to the rescue folder (SaveFailed names it)."""
    write_or_rescue(path, lambda f: torch.save(obj, f), "model")


def save_model(net: TransformerNet, path, meta: Optional[dict] = None, **training_state) -> Path:
    """Save ``net`` (config + weights + ``meta``) atomically; ``training_state`` (optimizer, step, …) is
    added for resuming. :meth:`FastStylizer.load` reads either kind."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    _atomic_save({"format": FORMAT, "version": 1, "net": net.config, "state_dict": state, "meta": meta or {},
                  **training_state}, Path(path))
    return Path(path)


def resolve_model(path_or_name) -> Path:
    """A shipped model name (``"starry_night"``, see :func:`available_models`) or a path → the file's path."""
    p = Path(path_or_name)
    if isinstance(path_or_name, str) and p.suffix == "" and (MODELS_DIR / f"{path_or_name}.pth").is_file():
        return MODELS_DIR / f"{path_or_name}.pth"
    if not p.is_file():
        raise WeightsError(f"'{p}': fast-style model not found (shipped models: {', '.join(available_models()) or 'none'})")
    return p


def available_models() -> list[str]:
    """Names of the models shipped in ``nstedu/models``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.pth"))


def read_model_file(path) -> dict:
    """Read and check a model file → its dict; a one-line :class:`WeightsError` naming the file otherwise."""
    path = resolve_model(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"'{path}': not a readable PyTorch file ({type(e).__name__}); is it a fast-style model?") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("state_dict"), dict):
        raise WeightsError(f"'{path}': not an nstedu fast-style model (save one with nstedu.fast.train_fast)")
    return obj


def load_net(path) -> tuple[TransformerNet, dict]:
    """Model file → (``TransformerNet`` in eval mode on the CPU, the file's dict)."""
    obj = read_model_file(path)
    try:
        net = TransformerNet(**obj["net"])
        net.load_state_dict(obj["state_dict"])
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200]
        raise WeightsError(f"'{resolve_model(path)}': weights do not fit the network ({type(e).__name__}: {first})") from None
    bad = [k for k, v in obj["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"'{resolve_model(path)}': {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. "
                           f"{bad[0]}); the training diverged: retrain with a lower --lr")
    return net.eval(), obj


# -------------------------------------------------------------------------------------------- inference
class FastStylizer:
    """A trained network as a function: ``FastStylizer.load("starry_night")(image) -> PIL.Image``."""

    def __init__(self, net: TransformerNet, meta: Optional[dict] = None, device="auto"):
        self.device = resolve_device(device)
        self.net, self.meta = net.to(self.device).eval(), meta or {}

    @classmethod
    def load(cls, path_or_name, device="auto") -> "FastStylizer":
        """Load a model file or a shipped model by name (see :func:`available_models`)."""
        net, obj = load_net(path_or_name)
        return cls(net, obj.get("meta"), device)

    @torch.no_grad()
    def stylize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] → stylized ``(B, 3, H, W)`` in [0, 1] (same size, on the CPU)."""
        self.net.eval()
        return self.net(x.to(self.device)).clamp_(0, 1).cpu()

    def memory_gb(self, width: int, height: int) -> float:
        """Peak memory (GB) of one ``width``×``height`` photo: ~30·width bytes per pixel for the network's
        activations, plus the photo and the result as images and tensors (measured on the CPU)."""
        return width * height * (30.0 * self.net.width + 200.0) / 1e9

    def __call__(self, image: ImageLike, size: Optional[int] = None) -> Image.Image:
        """Stylize any image (path, sample name, PIL, array, tensor); ``size``: longest side (default: as is).
        The memory it needs is checked first (a one-line ValueError naming ``--size`` that fits)."""
        photo = load_content(image)
        w, h = fit_longest(*photo.size, size) if size is not None else photo.size
        check_size_fits(f"a {w}×{h} result", self.memory_gb(w, h), self.device, "--size", max(w, h))
        if size is not None:
            photo = resize_longest(photo, size)
        return tensor_to_pil(self.stylize_tensor(pil_to_tensor(photo)))

    def __repr__(self):
        return f"FastStylizer({self.net.config}, style={self.meta.get('style')!r}, device={self.device})"
