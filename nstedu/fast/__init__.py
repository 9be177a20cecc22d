"""Fast style transfer: a feed-forward network trained once per style, then one forward pass per photo
(Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016;
instance normalization from Ulyanov, Vedaldi & Lempitsky, 2016).

    from nstedu.fast import FastStylizer, train_fast
    image = FastStylizer.load("starry_night")("photo.jpg")            # shipped model -> PIL.Image
    result = train_fast("great_wave", images="photos/", steps=2000, checkpoint="wave.pth")
    image = result.stylizer("photo.jpg")

Training minimizes, over the network's weights θ and random photo crops x, the *same* objective the
optimization method minimizes over pixels (:class:`nstedu.objective.Objective`), averaged over the batch:

    L(θ) = mean_x [ α·L_content(f_θ(x), x) + β·L_style(f_θ(x), A) + γ·L_tv(f_θ(x)) ]

The style Grams A are computed once. After training, stylizing is one forward pass of f_θ: no VGG-19 at all.
Two halves: :mod:`nstedu.fast.network` (the network, model files, inference) and :mod:`nstedu.fast.training`;
:mod:`nstedu.fast.stability` adds a term that trains a network to be steady on video (synthetic motion, Gupta et
al. 2017): ``train_fast(..., init_model="starry_night_cpu", stability_weight=...)`` fine-tunes a shipped model.
"""
from .network import (FORMAT, MODELS_DIR, ConvLayer, FastStylizer, ResidualBlock, TransformerNet, available_models,
                      init_net, load_net, read_model_file, resolve_model, save_model)
from .training import (FastConfig, FastTraining, PerceptualLoss, PhotoCrops, export_model, train_fast,
                       training_photos)

__all__ = ["FORMAT", "MODELS_DIR", "ConvLayer", "ResidualBlock", "TransformerNet", "init_net", "save_model",
           "resolve_model", "available_models", "read_model_file", "load_net", "FastStylizer", "PhotoCrops",
           "training_photos", "PerceptualLoss", "FastConfig", "FastTraining", "train_fast", "export_model"]
