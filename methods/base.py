"""The ``Explainer`` contract (protocol §3); the registry is ``methods.registry``.

An explainer takes the input features of one domain, shape (B, T, F) (F = 513 in
the listenable domain; in the mel domain the classifier's bands, 80 for CNN14), and the explained classes (B,), and
returns a map on the same grid (or on the first T_m ≤ T frames, as L-MAC does).
Gradient baselines return raw saliency maps; ``to_mask`` turns them into soft masks
in [0, 1] by taking abs and dividing by the per-sample max (no threshold).
Explainers whose output already is a mask (L-MAC, L2I, all-ones) set
``returns_mask = True`` and are used as they come. Explainers that read the
classifier's block representations (L-MAC, L2I) set ``reads_representations = True``
and receive them from the caller's one unmasked pass (``representations=``).

To add a method: subclass ``Explainer``, implement ``attribute``, decorate the
class with ``@register("my-name")`` (``methods.registry``); ``--methods my-name`` then runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from classifiers.base import Classifier, DomainModel


class InvalidExplanationError(RuntimeError):
    """An explainer returned a map of the wrong grid, NaN/inf values or an empty tensor."""


@dataclass
class TrainingResources:
    """What trainable explainers (L-MAC, L2I) need to fit themselves, and where to cache.

    Attributes:
        classifier: the trained classifier (``classifiers.base.Classifier``), frozen, in eval mode.
        classifier_key: hash of the classifier's identity: its configuration and training data, or
            its weights (part of cache keys).
        train_waveforms: (N, 80000) float training clips at 16 kHz.
        train_labels: (N,) long.
        valid_waveforms: (M, 80000) validation clips (explainers choose their epoch on them), or None.
        noise_waveforms: (K, 80000) noise clips for 0 dB augmentation, or None
            (then other training clips serve as the noise).
        cache_dir: directory for checkpoints.
        profile: sizes and schedules of the chosen profile (``foundation.profiles``).
        device: torch device.
        seed: random seed.
        data_key: hash of the content of the training audio, its labels, the noise
            clips and the peak normalisation (part of cache keys).
        valid_key: the same for the validation clips.
        peak_normalisation: "max" or "absmax", for mixtures made in training.
        precision: "fp32" or "bf16": training under autocast (``foundation.precision``); part of
            the cache keys (``precision.key_part``).
        domains: the domains the run explains; explainers with a model per domain (L-MAC)
            fit one for each of them.
        log: explainers append what they trained or loaded (checkpoint keys), for run.json.
        reference_dir: shipped reference models looked up before the cache, or None (``--retrain``).
        models: one entry per trained part used (``foundation.checkpoints.cached_training``'s ``used``).
        expected_models: file name → SHA-256 of the models a resumed or reported run used: loaded with exactly
            these bytes, never trained (``cached_training``'s ``expected``); None: train what is missing.
    """

    classifier: Classifier
    classifier_key: str
    train_waveforms: torch.Tensor
    train_labels: torch.Tensor
    noise_waveforms: torch.Tensor | None
    cache_dir: Path
    profile: dict[str, Any]
    device: torch.device
    seed: int
    data_key: str = ""
    valid_waveforms: torch.Tensor | None = None
    valid_key: str = ""
    peak_normalisation: str = "max"
    precision: str = "fp32"
    domains: tuple[str, ...] = ("listenable",)
    log: list = field(default_factory=list)
    reference_dir: Path | None = None
    models: list = field(default_factory=list)
    expected_models: dict | None = None


class Explainer:
    """Base class of every interpretation method.

    Class attributes:
        name: registry name (set by ``register``).
        domains: domains the method can explain ("listenable", "mel", "waveform").
        returns_mask: True when ``attribute`` already returns a mask in [0, 1].
        reads_representations: True when ``attribute`` takes ``representations=``,
            the representations of the classifier's pass on ``features`` (a ``ClassifierPass``'s,
            deepest first), so that it needs no pass of its own.
        requires: what the method needs of the classifier beyond its logits
            (``classifiers.base.REQUIREMENTS``: "representations", "cam_layer", "relu_modules");
            a run whose classifier lacks one refuses the method before anything trains.
        needs_validation_clips: True when ``fit`` chooses something on the validation
            clips (L2I its epoch); a split without them is refused before anything trains.
        makes_waveforms: True when the explanation is a waveform and its complement (LMAC-TD) rather than a
            map: the method implements ``waveforms(waves, representations)`` → (x_in, x_out), the metrics read
            the domain's features of both, and the map on the grid is ``interpretation_mask`` (protocol §5).
        control: True for the control rows (all-ones, random, energy; ``methods.controls``),
            which the tables never mark as the best method.
        VALUE_RANGES: the closed range of a numeric hyperparameter that ``--set`` accepts, by keyword;
            a keyword not listed takes an integer ≥ 1 (counts) or a number ≥ 0. Non-finite values never.

    Constructor keywords are the method's hyperparameters, with the paper's values
    as defaults; ``config()`` records them for run.json.
    """

    name: ClassVar[str] = ""
    domains: ClassVar[tuple[str, ...]] = ("listenable", "mel", "waveform")
    returns_mask: ClassVar[bool] = False
    reads_representations: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    needs_validation_clips: ClassVar[bool] = False
    makes_waveforms: ClassVar[bool] = False
    control: ClassVar[bool] = False
    VALUE_RANGES: ClassVar[dict[str, tuple[float, float]]] = {}

    def __init__(self, **hyperparameters: Any):
        self.hyperparameters = hyperparameters
        self.label = self.name  # the row name in tables; a sweep adds the swept values

    def config(self) -> dict[str, Any]:
        return {"method": self.name, **self.hyperparameters}

    def check(self) -> None:
        """Raise ``ValueError`` (e.g. ``CheckpointError``) for a file the method will need but
        cannot use; called before anything trains. Default: nothing to check."""

    def fit(self, resources: TrainingResources) -> None:
        """Train (or load from the cache) whatever the method learns. Default: nothing."""

    def notes(self) -> list[str]:
        """Lines for under the run's table about what was fitted (e.g. L2I's θ fidelity). Default: none."""
        return []

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Map of relevance of each time-frequency bin for class ``target``.

        Args:
            model: the classifier seen from the domain of ``features``, eval mode.
            features: (B, T, F) input X of the domain (log1p magnitudes, ≥ 0).
            target: (B,) long, the explained (predicted) class of each input.
        Returns:
            (B, T_m, F) with T_m ≤ T: a raw map, or a mask in [0, 1] if ``returns_mask``.
        """
        raise NotImplementedError

    def mask(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor,
             representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The explanation as a mask (B, T_m, F) in [0, 1], validated (§3).

        ``representations``: the classifier's block outputs on ``features``, handed to
        explainers that read them (``reads_representations``); they make a pass of
        their own without it.

        Raises:
            InvalidExplanationError: empty output, wrong grid, or NaN/inf values.
        """
        if self.reads_representations:
            result = self.attribute(model, features, target, representations=representations)
        else:
            result = self.attribute(model, features, target)
        check_map(result, features, self.name)
        result = result.detach().float()  # a bf16 map (autocast) becomes float32 before metrics
        return result.clamp(0.0, 1.0) if self.returns_mask else to_mask(result)


def check_map(result: torch.Tensor, features: torch.Tensor, method: str) -> None:
    """Raise ``InvalidExplanationError`` unless ``result`` is a finite map on the grid of ``features``."""
    batch, frames, bins = features.shape
    if result.dim() != 3 or result.shape[0] != batch or result.shape[2] != bins or not 0 < result.shape[1] <= frames:
        raise InvalidExplanationError(
            f"{method} returned a map of shape {tuple(result.shape)} for inputs of shape "
            f"{tuple(features.shape)}; expected (B, T_m ≤ T, F) on the input grid"
        )
    if not all(torch.isfinite(extreme) for extreme in torch.aminmax(result)):  # NaN propagates to both
        raise InvalidExplanationError(f"{method} returned NaN or infinite values")


def interpretation_mask(features_in: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The map on a domain's grid of an explanation made as a waveform: X_in / X clipped to [0, 1], 0 where X = 0
    (LMAC-TD recipe's saliency figure, X_mel_interp / X_mel). Both (B, T, F) log1p features ≥ 0."""
    ratio = features_in / features.clamp_min(torch.finfo(features.dtype).tiny)
    return torch.where(features > 0, ratio, torch.zeros_like(ratio)).clamp(0.0, 1.0)


def differentiable_input(features: torch.Tensor) -> torch.Tensor:
    """A copy of ``features`` that requires grad, for gradient-based attribution (Captum's inputs)."""
    return features.detach().clone().requires_grad_()


def to_mask(saliency_map: torch.Tensor) -> torch.Tensor:
    """abs, divided by the per-sample max: (B, T, F) map → soft mask in [0, 1] (§3).

    An all-zero map stays all zero; the structural metrics count it as invalid.
    """
    absolute = saliency_map.abs()
    peak = absolute.flatten(1).amax(dim=1).clamp_min(torch.finfo(absolute.dtype).tiny)
    return absolute.div_(peak.view(-1, 1, 1))
