r"""How close is a result to the photo and to the painting? The one definition of the quality measures.

Both are *relative* errors measured with the Caffe VGG-19 (post-ReLU activations, as in Gatys et al.'s Caffe
model, where ReLU runs in place) and the normalized Gram matrix :math:`G = F F^\top / (C H W)`:

* **content distance** :math:`\|F(x) - F(p)\|^2 / \|F(p)\|^2` at ``relu4_2``, with the photo :math:`p` resized
  to the result's size: 0 is the photo's layout untouched, about 1 is "as far from the photo as a blank image";
* **style distance** of a layer :math:`\|G(x) - G(s)\|^2 / \|G(s)\|^2` at ``relu1_1`` … ``relu5_1``, with the
  painting :math:`s` resized so that its longest side equals the result's; **style distance** is the mean of the
  five. ``relu1_1`` is the painting's colours and finest texture, ``relu5_1`` its large motifs.

Lower is closer. Both are ratios, so they do not depend on the image size or on the feature scale.
``measure(..., all_measures=True)`` adds two measures (issue 26: where does each style statistic win, also on
measures it does not optimize?):

* **sliced Wasserstein distance** of a layer (:func:`swd_distances`): the features' whole distribution, compared
  along :data:`SWD_DIRECTIONS` × C random directions drawn with :data:`SWD_SEED` (not the engine's ``swd``
  directions, so a result cannot score well by matching only those), relative to the painting's mean squared
  projection; ``Quality.swd`` is the mean over relu1_1 … relu5_1;
* **colour distance** (:func:`colour_distance`, no network): the sliced Wasserstein distance of the two images'
  pixel colours in CIELAB, :math:`\sqrt{\text{mean squared quantile difference}}` over 64 directions, in ΔE
  units: how far, on average, a pixel's colour must move to turn one palette into the other.
Used by the tests, ``benchmarks/bench_quality.py`` and notebook 04. For video, **warping error**
(:func:`warping_error`, defined in :mod:`nstedu.flow`): the mean squared difference between a stylized frame and
the previous one warped by the optical flow, over non-occluded pixels (lower = less flicker).

    q = measure(result.image, "photo.jpg", "starry_night")   # -> Quality(content=0.61, style=0.03, layers={...})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import torch
from PIL import Image

from . import samples
from .flow import warping_error  # noqa: F401  (the video measure lives with the others: nstedu.metrics.warping_error)
from .images import ImageLike, load_image, pil_to_tensor, resize_longest
from .losses import gram_matrix
from .style_stats import directions, resample_quantiles, sorted_projections
from .vgg import VGG19Features, get_vgg

#: The content layer of the measure (Gatys et al.'s "conv4_2" blob, rectified in place by Caffe).
CONTENT_LAYER = "relu4_2"
#: The style layers of the measure, shallow to deep.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class Quality:
    """Content distance, style distance (mean over layers) and the per-layer style distances ``{layer: value}``.
    All are relative squared errors ≥ 0; lower is closer."""

    content: float
    style: float
    layers: Mapping[str, float] = field(default_factory=dict)
    swd: float = float("nan")        # with all_measures=True: mean sliced Wasserstein distance over the layers
    swd_layers: Mapping[str, float] = field(default_factory=dict)
    colour: float = float("nan")     # with all_measures=True: CIELAB colour distance (ΔE)

    def row(self) -> list[float]:
        """``[content, style, relu1_1, …, relu5_1]`` — the columns of a results table."""
        return [self.content, self.style] + [self.layers[k] for k in STYLE_LAYERS if k in self.layers]


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    r""":math:`\|x - r\|^2 / \|r\|^2` for two tensors of the same shape (any shape); ``inf`` if ``r`` is all zero
    and ``x`` is not, 0 if both are."""
    if x.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(reference.shape)}")
    num = float((x.double() - reference.double()).pow(2).sum())
    den = float(reference.double().pow(2).sum())
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return num / den


def content_distance(features: torch.Tensor, photo_features: torch.Tensor) -> float:
    """Content distance of two ``relu4_2`` activations ``(1, C, H, W)`` (the result's and the photo's)."""
    return relative_error(features, photo_features)


def style_distances(features: Mapping[str, torch.Tensor], painting_features: Mapping[str, torch.Tensor],
                    layers: Sequence[str] = STYLE_LAYERS) -> dict[str, float]:
    """``{layer: ‖G(x) − G(s)‖² / ‖G(s)‖²}`` from activations ``{layer: (1, C, H, W)}`` of the result and of the
    painting (their spatial sizes may differ: Gram matrices are ``C × C`` whatever the size)."""
    return {k: relative_error(gram_matrix(features[k]), gram_matrix(painting_features[k])) for k in layers}


#: The measure's sliced Wasserstein directions: this many per channel, drawn from a generator with this seed.
SWD_DIRECTIONS, SWD_SEED = 4, 2026


def _swd(ours: torch.Tensor, theirs: torch.Tensor, dirs: torch.Tensor) -> tuple[float, float]:
    """(mean squared quantile difference, the second's mean squared projection) along ``dirs``, in float64."""
    a = sorted_projections(ours.double(), dirs.double())
    b = resample_quantiles(sorted_projections(theirs.double(), dirs.double()), a.shape[-1])
    return float((a - b).pow(2).mean()), float(b.pow(2).mean())


def swd_distances(features: Mapping[str, torch.Tensor], painting_features: Mapping[str, torch.Tensor],
                  layers: Sequence[str] = STYLE_LAYERS) -> dict[str, float]:
    """``{layer: SW²(x, s) / mean squared projection of s}`` from activations ``{layer: (1, C, H, W)}`` of the
    result and the painting (sizes may differ: the painting's quantiles are resampled)."""
    out = {}
    for k in layers:
        c = features[k].shape[1]
        num, den = _swd(features[k], painting_features[k], directions(c, SWD_DIRECTIONS * c, seed=SWD_SEED,
                                                                        device=features[k].device))
        out[k] = num / den if den > 0 else 0.0
    return out


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB ``(1, 3, H, W)`` in [0, 1] → CIELAB (D65 white; L in 0–100), same shape, float64."""
    x = x.double()
    lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64, device=x.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    xyz = xyz / torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def colour_distance(image: ImageLike, painting: ImageLike, count: int = 64) -> float:
    """Sliced Wasserstein distance of the two images' pixel colours in CIELAB, in ΔE units (0: the same colours in
    the same proportions; sizes may differ). Images: paths, PIL images or tensors ``(1, 3, H, W)`` in [0, 1]."""
    a, b = (rgb_to_lab(t if isinstance(t, torch.Tensor) else pil_to_tensor(load_image(t))) for t in (image, painting))
    num, _ = _swd(a, b, directions(3, count, seed=SWD_SEED, device=a.device))
    return num ** 0.5


def prepare(output: ImageLike, photo: ImageLike, painting: ImageLike):
    """The three images as the measure sees them: ``(output, photo resized to the output's size, painting resized
    so its longest side is the output's)``, each a ``PIL.Image`` (RGB). Bundled sample names are accepted."""
    def load(src, role):
        if isinstance(src, str) and src in samples.names():
            src = samples.path(src)
        return load_image(src, name=role if not isinstance(src, str) else f"{role} '{src}'")

    out = load(output, "result image")
    p = load(photo, "content image")
    s = load(painting, "style image")
    if p.size != out.size:
        p = p.resize(out.size, _resample(p.size, out.size))
    return out, p, resize_longest(s, max(out.size))


def _resample(old, new):
    return Image.LANCZOS if new[0] * new[1] < old[0] * old[1] else Image.BICUBIC


@torch.no_grad()
def measure(output: ImageLike, photo: ImageLike, painting: ImageLike, vgg: Optional[VGG19Features] = None,
            device: str | torch.device = "cpu", all_measures: bool = False) -> Quality:
    """Score ``output`` against ``photo`` and ``painting`` (paths, sample names, ``PIL.Image``, arrays or tensors
    ``(1, 3, H, W)`` in [0, 1]; tensors are rounded to 8 bits like a saved image). ``vgg``: the measuring
    network, by default the Caffe VGG-19 with max pooling — keep it fixed so that numbers are comparable.
    ``all_measures``: also the sliced Wasserstein and CIELAB colour distances (``Quality.swd``, ``.colour``)."""
    vgg = vgg if vgg is not None else get_vgg("caffe", device, "max")
    dev = vgg.in_scale.device
    out, p, s = (pil_to_tensor(im, dev) for im in prepare(output, photo, painting))
    fx = vgg(out, [CONTENT_LAYER, *STYLE_LAYERS])
    fp = vgg(p, [CONTENT_LAYER])
    fs = vgg(s, list(STYLE_LAYERS))
    layers = style_distances(fx, fs)
    extra = {}
    if all_measures:
        sw = swd_distances(fx, fs)
        extra = dict(swd=sum(sw.values()) / len(sw), swd_layers=sw, colour=colour_distance(out, s))
    return Quality(content_distance(fx[CONTENT_LAYER], fp[CONTENT_LAYER]), sum(layers.values()) / len(layers), layers,
                   **extra)
