"""The classifier contract, the classifier registry, and the classifier seen from a domain.

A ``Classifier`` says everything the benchmark needs to explain one audio classifier, and
explainers, metrics, the sanity check and the bench use nothing else of it:

- ``sample_rate`` (Hz, the model's own) and ``class_names``;
- ``features(waveform)``: how a waveform (B, N) at the benchmark's 16 kHz becomes the model's own
  input features (B, T, F), differentiably (a model of another rate resamples inside): the grid of
  its ``feature_domain``, "mel" (a log-mel grid, whatever its shape) or "waveform" (the samples in
  frames, for a model that reads the waveform);
- ``forward_with_representations(features)``: the logits (B, C) and the block or layer
  representations that decoder-based explainers read (L-MAC, L2I), deepest first, each a grid
  (B, C_i, T_i, F_i) (a token sequence is given as its time × frequency grid); ``()`` when the
  model gives none, and then methods that need them are refused;
- ``cam_layer()``: the module whose output (B, C, T', F') GradCAM-family methods read (a model
  whose layers emit tokens routes them through a grid module; see ``classifiers.ast``), or None;
- ``randomisation_levels()``: the parameter groups of the sanity check's cascading
  randomisation, top-down;
- how the listenable domain reaches the model: a classifier that declares
  ``listenable_features`` (``reads_stft = True``, e.g. CNN14's STFT→Mel) maps X = log1p|STFT|
  to its features directly; any other is fed the inverse STFT of the (masked) spectrogram with
  the input's phase (``frontend.listenable_waveform``), so that what the model hears is exactly
  what a listener hears. Both paths are differentiable.

A classifier that the benchmark trains on the data also gives ``build(class_names, profile)`` (a
fresh model) and ``training_config(profile)`` (its architecture and schedule: part of the cache
key). Adding one: subclass ``Classifier`` in one module, decorate it with
``@register_classifier("name")``, and pass ``--classifier name`` (``--import module`` for a
module outside the repository).
"""
from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from foundation.frontend import SAMPLE_RATE, Domain, log1p_magnitude, stft, waveform_from_log1p

REQUIREMENTS = {
    "representations": "representations for decoders (forward_with_representations gives none)",
    "cam_layer": "layer for class activation maps (cam_layer() is None)",
    "relu_modules": "nn.ReLU modules, whose backward pass Guided Backprop modifies",
}
"""What an explainer may need of a classifier beyond its logits (``Explainer.requires``)."""


class ClassifierPass(NamedTuple):
    """One classifier pass: logits (B, n_classes) and the representations (deepest first, each
    (B, C_i, T_i, F_i)), the input of L-MAC's decoder and L2I's interpreter."""

    logits: torch.Tensor
    representations: tuple[torch.Tensor, ...]

    def rows(self, start: int, stop: int) -> ClassifierPass:
        """The pass of samples ``start`` … ``stop − 1``."""
        return ClassifierPass(self.logits[start:stop], tuple(block[start:stop] for block in self.representations))


class Classifier(nn.Module):
    """The classifier contract (module docstring). Subclasses implement ``features`` and
    ``forward_with_representations``; the rest has defaults.

    Class attributes:
        name: registry name (set by ``register_classifier``).
        sample_rate: the rate the model expects, in Hz (the benchmark reads audio at 16 kHz; ``features``
            takes 16 kHz and resamples when they differ).
        feature_domain: the domain of ``features``' grid: "mel" or "waveform" (``frontend.DOMAINS``).
        zero_shot: True when the classes are the dataset's, given after it is opened (``use_class_names``; CLAP).
        reads_stft: True when ``listenable_features`` maps X = log1p|STFT| (B, T, 513) to the features.
        decoder_layout: "grid" (L-MAC and L2I build their networks from the representations' shapes)
            or "speechbrain-cnn14" (SpeechBrain's ``CNN14PSI_stft`` / ``CNN14PSI`` decoders, whose
            published checkpoints then load).
    """

    name: ClassVar[str] = ""
    sample_rate: ClassVar[int] = SAMPLE_RATE
    feature_domain: ClassVar[str] = "mel"
    zero_shot: ClassVar[bool] = False
    reads_stft: ClassVar[bool] = False
    decoder_layout: ClassVar[str] = "grid"

    def __init__(self, class_names: list[str]):
        super().__init__()
        self.class_names = list(class_names)

    @classmethod
    def build(cls, class_names: list[str], profile: str) -> Classifier:
        """A fresh (untrained) model for ``class_names`` at the sizes of ``profile`` ("paper", "cpu", "tiny").

        Raises:
            NotImplementedError: the classifier is not trained by the benchmark (a pretrained model).
        """
        raise NotImplementedError(f"the {cls.name or cls.__name__} classifier is not trained by the benchmark")

    @classmethod
    def training_config(cls, profile: str) -> dict[str, Any]:
        """The architecture and schedule of training at ``profile``: at least ``epochs`` and ``lr``
        (Adam, cross-entropy, the profile's batch size); every key enters the cache key."""
        raise NotImplementedError(f"the {cls.name or cls.__name__} classifier is not trained by the benchmark")

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, N) at ``sample_rate`` → the model's input features (B, T, F), differentiable."""
        raise NotImplementedError

    def listenable_features(self, log1p_stft: torch.Tensor) -> torch.Tensor:
        """X = log1p|STFT| (B, T, 513), possibly masked → the model's features; only when ``reads_stft``."""
        raise NotImplementedError

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits (B, n_classes) and the representations (deepest first) for features (B, T, F)."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for features (B, T, F)."""
        return self.forward_with_representations(features).logits

    def cam_layer(self) -> nn.Module | None:
        """The module whose output (B, C, T', F') GradCAM reads (time × frequency), or None."""
        return None

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The sanity check's levels, top-down: (name of the cumulative level, modules it re-initialises
        in addition to the levels above). Default: none (the check then has only the original level)."""
        return []

    def describe(self) -> dict[str, Any]:
        """What run.json records of the model: its name, classes and parameter count."""
        return {"name": self.name, "classes": len(self.class_names),
                "parameters": sum(p.numel() for p in self.parameters())}

    def capabilities(self) -> set[str]:
        """The ``REQUIREMENTS`` this classifier meets (one probe pass for the representations)."""
        found = {"relu_modules"} if any(isinstance(m, nn.ReLU) for m in self.modules()) else set()
        if self.cam_layer() is not None:
            found.add("cam_layer")
        if self.representation_shapes(5 * SAMPLE_RATE):
            found.add("representations")
        return found

    @torch.no_grad()
    def representation_shapes(self, samples: int) -> list[tuple[int, int, int]]:
        """(C_i, T_i, F_i) of each representation for a clip of ``samples`` samples (a probe pass on
        silence; the shapes do not depend on the content)."""
        training = self.training
        self.eval()
        probe = self.forward_with_representations(self.features(torch.zeros(1, samples, device=_device(self))))
        self.train(training)
        return [tuple(r.shape[1:]) for r in probe.representations]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


_REGISTRY: dict[str, type[Classifier]] = {}


def register_classifier(name: str):
    """Class decorator: make a ``Classifier`` subclass selectable as ``--classifier name``."""

    def decorate(cls: type[Classifier]) -> type[Classifier]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a classifier is already registered as {name!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_classifiers() -> list[str]:
    """The registered names, and ``hf:PATH_OR_ID`` for Hugging Face models."""
    return [*_REGISTRY, "hf:PATH_OR_ID"]


def classifier_class(name: str) -> type[Classifier]:
    """The registered class of ``--classifier name``.

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"--classifier {name}: unknown classifier; registered: {', '.join(available_classifiers())} "
                         "(--import a module that registers yours)")
    return _REGISTRY[name]


def load_pretrained(name: str) -> Classifier:
    """The pretrained model of ``--classifier hf:PATH_OR_ID`` (``classifiers.huggingface``).

    Raises:
        ValueError: a missing folder, or one without a supported audio-classification model.
    """
    from classifiers.huggingface import load  # it builds on classifiers.ast, which builds on this module

    return load(name.removeprefix("hf:"))


class DomainModel(nn.Module):
    """The classifier seen from one domain: ``forward(X)`` with X on the domain's grid. This is the
    function every explainer attributes and every metric queries.

    - listenable: X = log1p|STFT| (B, T, 513). A classifier that ``reads_stft`` gets
      ``listenable_features(X)``; any other gets ``features`` of the waveform
      ``frontend.waveform_from_log1p(X, phase, length)``, with the phase and length of the explained
      input, bound by ``hearing``. Frames beyond X's T_m ≤ T (L-MAC's 425 of 431) are silent there.
    - mel or waveform (the classifier's ``feature_domain``): X = ``classifier.features(waveform)``, the
      model's own features, fed as they are.

    ``per_sample`` (the harness on CPU): passes without gradient tracking take the samples one at
    a time. oneDNN picks its convolution algorithm by batch size, and per-sample passes make every
    per-sample result independent of the batch size at no cost on CPU.
    """

    def __init__(self, classifier: Classifier, domain: Domain, per_sample: bool = False,
                 phase: torch.Tensor | None = None, length: int = 0):
        super().__init__()
        self.classifier = classifier
        self.domain = domain
        self.per_sample = per_sample
        self.phase = phase
        self.length = length

    @property
    def needs_phase(self) -> bool:
        """True when the listenable input reaches the model through the inverse STFT (``hearing`` required)."""
        return self.domain.name == "listenable" and not self.classifier.reads_stft

    def features(self, waveform: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """The domain's input X (B, T, F) of waveforms (B, N); ``spec``: their STFT, if computed already."""
        if self.domain.name == "listenable":
            return log1p_magnitude(stft(waveform) if spec is None else spec)
        return self.classifier.features(waveform)

    @torch.no_grad()
    def grid(self, samples: int) -> tuple[int, int]:
        """(T, F) of the domain's input X for a clip of ``samples`` samples."""
        silence = torch.zeros(1, samples, device=_device(self.classifier))
        return tuple(self.features(silence).shape[1:])

    def hearing(self, spec: torch.Tensor, length: int) -> DomainModel:
        """This model with the phase of ``spec`` (complex (B, T, 513)) and the waveform ``length`` bound,
        for inputs X of those B samples (or of one sample, repeated); itself when it needs no phase."""
        return self.with_phase(spec.angle(), length) if self.needs_phase else self

    def with_phase(self, phase: torch.Tensor, length: int) -> DomainModel:
        """This model with ``phase`` (B, T, 513) in radians and the waveform ``length`` bound (``hearing``)."""
        return DomainModel(self.classifier, self.domain, self.per_sample, phase, length).train(self.training)

    def sample(self, k: int) -> DomainModel:
        """This model for sample ``k`` of the bound batch alone (itself when no phase is bound)."""
        return self if self.phase is None else self.with_phase(self.phase[k:k + 1], self.length)

    def model_input(self, features: torch.Tensor, phase: torch.Tensor | None) -> torch.Tensor:
        """X (B, T_m, F) → what ``classifier.forward`` takes."""
        if self.domain.name != "listenable":
            return features
        if self.classifier.reads_stft:
            return self.classifier.listenable_features(features)
        if phase is None:
            raise RuntimeError(f"the {self.classifier.name} classifier hears the listenable domain through the inverse "
                               "STFT: bind the input's phase with DomainModel.hearing(spec, length)")
        with torch.autocast(features.device.type, enabled=False):
            waveform = waveform_from_log1p(features.float(), phase.expand(len(features), -1, -1), self.length)
        return self.classifier.features(waveform)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for X (B, T, F)."""
        return self.forward_with_representations(features).logits

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits and representations for X (B, T, F): one pass of every sample."""
        if self.phase is not None and len(self.phase) not in (1, len(features)):
            raise RuntimeError(f"{len(features)} inputs for the phase of {len(self.phase)} samples")
        if torch.is_grad_enabled() or not self.per_sample:
            return self.classifier.forward_with_representations(self.model_input(features, self.phase))
        phases = [None] * len(features) if self.phase is None else (
            self.phase.split(1) if len(self.phase) > 1 else [self.phase] * len(features))
        passes = [self.classifier.forward_with_representations(self.model_input(x, phase))
                  for x, phase in zip(features.split(1), phases)]
        return ClassifierPass(torch.cat([p.logits for p in passes]),
                              tuple(torch.cat(blocks) for blocks in zip(*(p.representations for p in passes))))
