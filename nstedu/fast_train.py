"""Deprecated: the training half of fast style transfer moved to :mod:`nstedu.fast.training` (also importable
from :mod:`nstedu.fast`). ``from nstedu.fast_train import train_fast`` keeps working, with a warning."""
import warnings

from .fast.training import (FastConfig, FastTraining, PerceptualLoss, PhotoCrops, export_model,  # noqa: F401
                            train_fast, training_photos)

warnings.warn("nstedu.fast_train is deprecated: import from nstedu.fast (e.g. from nstedu.fast import train_fast)",
              DeprecationWarning, stacklevel=2)
