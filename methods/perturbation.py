"""Model-agnostic perturbation explainers via Captum: Occlusion, Feature Ablation, LIME and Kernel SHAP.

Each explains the logit of the class ``target`` (Captum's forward output of the classifier seen from
the domain, ``classifiers.base.DomainModel``; no softmax) by replacing groups of the input X (B, T, F)
with a baseline and watching the logit. The groups are the audio literature's: time segments of
``window`` ms (default 100 ms) over the whole spectrum, or with ``bands`` > 1 time × frequency
patches. The map (B, T, F) is raw (a logit difference, or a surrogate model's coefficient, spread over
the bins of each group); the harness turns it into a mask by abs and per-sample max.

Groups, on the grid (T, F) of the input:

- a segment is ``round(window / frame)`` frames (≥ 1), ``frame`` being the domain's frame duration:
  5000 ms over the T of a 5 s clip (the listenable grid's 11.61 ms hop, CNN14's mel frames alike, the
  waveform domain's 20 ms frames); segments run from frame 0 and the last one holds the frames that
  remain (T mod segment frames, when the segment does not divide T). A window longer than the 5 s
  clip is refused by the constructor, a segment longer than the input's T by ``attribute``.
- ``bands`` splits the F bins into bands of ceil(F / bands) bins from the lowest bin up, the last band
  holding what remains; a count those bands cannot give exactly (32 bands of 513 bins: 17-bin bands
  make 31), or larger than F, is refused with the nearest counts that work. The waveform domain has
  no frequency axis (a row is 20 ms of samples): bands > 1 is refused there.

Occlusion slides a window of one segment × one band with the stride of the window (non-overlapping,
Captum truncates the last window at the edge); the other three get the same groups as Captum's
``feature_mask``, so Occlusion and Feature Ablation give the same map and differ in how Captum forms
the groups. ``baseline``: "zeros", "mean" (the clip's mean feature value) or "noise" (N(μ, σ²) per
bin with the clip's mean and standard deviation, clamped to the clip's range, drawn from torch's
generator, which the harness seeds per sample; one draw per explained sample).

Model passes per sample (``evaluations``): 1 + groups for Occlusion and Feature Ablation (the
unperturbed input and one per group), ``n_samples`` for LIME and Kernel SHAP. ``evaluations_per_sample``
gives them for a run (run.json's ``evaluations_per_sample``); ``budget_lines`` says before a run starts
how they compare with the rest of its passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import FeatureAblation, KernelShap, Lime, Occlusion

from classifiers.base import Classifier, DomainModel
from datasets.audio import CLIP_SAMPLES
from foundation.frontend import DOMAINS, SAMPLE_RATE
from methods.base import Explainer
from methods.registry import register

CLIP_MS = 1000 * CLIP_SAMPLES / SAMPLE_RATE
"""Duration of the benchmark's clips in ms (5000): the longest window, and what sets a domain's frame duration."""
BASELINES = ("zeros", "mean", "noise")
PASS_KEYWORDS = ("n_samples", "n_steps", "n_baselines")
"""Hyperparameters whose product ``budget_lines`` counts as a method's own passes a sample (1 without them)."""


@dataclass(frozen=True)
class Groups:
    """The feature groups on a grid (T, F): ``segments`` × ``bands`` groups of ``frames`` × ``bins``
    (the last segment and band hold what remains); group id = segment · bands + band."""

    frames: int
    bins: int
    segments: int
    bands: int

    @property
    def count(self) -> int:
        return self.segments * self.bands

    def feature_mask(self, frames: int, bins: int, device: torch.device) -> torch.Tensor:
        """(1, T, F) long group ids, Captum's ``feature_mask``."""
        segment = torch.arange(frames, device=device) // self.frames
        band = torch.arange(bins, device=device) // self.bins
        return (segment[:, None] * self.bands + band[None, :]).unsqueeze(0)


class PerturbationExplainer(Explainer):
    """Base of the four perturbation explainers (module docstring): the feature groups, the baseline,
    the per-sample loop and the count of model passes.

    Keywords: ``window`` segment duration in ms, in (0, 5000] (default 100); ``bands`` frequency bands
    of the patch grid, ≥ 1 (default 1: whole-spectrum segments); ``baseline`` "zeros", "mean" or
    "noise"; ``perturbations_per_eval`` perturbed inputs per model call (batching only: the map does
    not depend on it).

    Raises:
        ValueError: a window ≤ 0 or longer than the clip, bands < 1, an unknown baseline, or a count < 1;
            the message names ``--set METHOD.KEY`` and the fix.
    """

    def __init__(self, window: float = 100.0, bands: int = 1, baseline: str = "zeros",
                 perturbations_per_eval: int = 16, **more):
        flag = f"--set {self.name}"
        if not 0 < window <= CLIP_MS:
            raise ValueError(f"{flag}.window={window:g}: a segment lasts more than 0 ms and at most the "
                             f"{CLIP_MS:.0f} ms clip; take a window in (0, {CLIP_MS:.0f}] ms (default 100)")
        if baseline not in BASELINES:
            raise ValueError(f"{flag}.baseline={baseline}: unknown baseline; take one of {', '.join(BASELINES)}")
        for key, value in {"bands": bands, "perturbations_per_eval": perturbations_per_eval, **more}.items():
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{flag}.{key}={value}: must be an integer ≥ 1")
        super().__init__(window=window, bands=bands, baseline=baseline,
                         perturbations_per_eval=perturbations_per_eval, **more)

    def groups(self, grid: tuple[int, int], clip_frames: int, domain: str) -> Groups:
        """The groups on the input grid ``grid`` (T, F), a 5 s clip having ``clip_frames`` frames in ``domain``.

        Raises:
            ValueError: a segment longer than T, bands > 1 in the waveform domain, bands > F, or a count
                of bands that bands of ceil(F / bands) bins cannot give (the nearest that work are named).
        """
        frames, bins = grid
        window, bands, flag = self.hyperparameters["window"], self.hyperparameters["bands"], f"--set {self.name}"
        segment = max(1, round(window * clip_frames / CLIP_MS))
        if segment > frames:
            raise ValueError(f"{flag}.window={window:g}: a segment of {segment} frames is longer than the input's "
                             f"{frames} frames; take a window ≤ {frames * CLIP_MS / clip_frames:.0f} ms")
        if bands > 1 and domain == "waveform":
            raise ValueError(f"{flag}.bands={bands}: the waveform domain has no frequency axis (a row is 20 ms of "
                             "samples); keep bands=1 or leave waveform out of --domains")
        if bands > bins:
            raise ValueError(f"{flag}.bands={bands}: the {domain} grid has {bins} bins, fewer than {bands} bands; "
                             f"take bands ≤ {bins}")
        height = math.ceil(bins / bands)
        if math.ceil(bins / height) != bands:
            works = [n for n in range(1, bins + 1) if math.ceil(bins / math.ceil(bins / n)) == n]
            nearest = sorted(works, key=lambda n: (abs(n - bands), n))[:2]
            raise ValueError(f"{flag}.bands={bands}: the {bins} bins of the {domain} grid do not make {bands} bands "
                             f"of ceil({bins} / {bands}) bins; take bands={' or '.join(map(str, sorted(nearest)))}")
        return Groups(segment, height, math.ceil(frames / segment), bands)

    def evaluations(self, grid: tuple[int, int], domain: str = "listenable") -> int:
        """Model passes per explained sample for a 5 s clip whose grid in ``domain`` is ``grid`` (T, F):
        1 + groups (Occlusion, Feature Ablation). Raises ``ValueError`` as ``groups`` does."""
        return 1 + self.groups(grid, grid[0], domain).count

    def baseline(self, features: torch.Tensor) -> torch.Tensor:
        """The perturbation baseline (1, T, F) of one sample's features (1, T, F) (module docstring)."""
        kind = self.hyperparameters["baseline"]
        if kind == "zeros":
            return torch.zeros_like(features)
        if kind == "mean":
            return torch.zeros_like(features) + features.mean()
        noise = features.mean() + features.std() * torch.randn_like(features)
        return torch.minimum(torch.maximum(noise, features.min()), features.max())

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Raw map (B, T, F) of the logit of ``target`` (B,) for ``features`` (B, T, F), one sample at a time.

        Raises:
            ValueError: the window or bands do not fit the input's grid (``groups``).
        """
        groups = self.groups(tuple(features.shape[1:]), model.grid(CLIP_SAMPLES)[0], model.domain.name)
        with torch.no_grad():
            return torch.cat([
                self.explain(model.sample(k), features[k:k + 1], int(target[k]), groups,
                             self.baseline(features[k:k + 1]))
                for k in range(len(features))])

    def explain(self, model: DomainModel, features: torch.Tensor, target: int, groups: Groups,
                baseline: torch.Tensor) -> torch.Tensor:
        """The map (1, T, F) of one sample (1, T, F) through Captum."""
        raise NotImplementedError


@register("occlusion")
class OcclusionExplainer(PerturbationExplainer):
    """Occlusion (Zeiler and Fergus, 2014; for audio, Shen et al., Interspeech 2025), Captum ``Occlusion``:
    a window of one segment × one band slid with its own size as stride; each bin gets the logit's drop
    when its window is replaced by the baseline. 1 + groups model passes a sample."""

    def explain(self, model: DomainModel, features: torch.Tensor, target: int, groups: Groups,
                baseline: torch.Tensor) -> torch.Tensor:
        window = (groups.frames, groups.bins)
        return Occlusion(model).attribute(features, sliding_window_shapes=window, strides=window, baselines=baseline,
                                          target=target,
                                          perturbations_per_eval=self.hyperparameters["perturbations_per_eval"])


@register("feature-ablation")
class FeatureAblationExplainer(PerturbationExplainer):
    """Feature Ablation (Captum ``FeatureAblation``) over the segment × band groups as ``feature_mask``:
    each bin gets the logit's drop when its group is replaced by the baseline. 1 + groups passes a sample."""

    def explain(self, model: DomainModel, features: torch.Tensor, target: int, groups: Groups,
                baseline: torch.Tensor) -> torch.Tensor:
        return FeatureAblation(model).attribute(
            features, baselines=baseline, target=target, feature_mask=groups.feature_mask(*features.shape[1:],
                                                                                          features.device),
            perturbations_per_eval=self.hyperparameters["perturbations_per_eval"])


class SampledExplainer(PerturbationExplainer):
    """A perturbation explainer that fits a surrogate on ``n_samples`` random perturbations (≥ 1, default
    200: about four times the 48 segments of a 5 s clip at 100 ms; the audio literature uses a few hundred to
    1000). ``n_samples`` model passes a sample."""

    def __init__(self, n_samples: int = 200, **kwargs):
        if n_samples < 1:
            raise ValueError(f"--set {self.name}.n_samples={n_samples}: {self.name} needs at least one perturbed "
                             "sample; take n_samples ≥ 1 (default 200)")
        super().__init__(**kwargs, n_samples=n_samples)

    def evaluations(self, grid: tuple[int, int], domain: str = "listenable") -> int:
        """``n_samples`` (the grid is checked as ``groups`` does)."""
        self.groups(grid, grid[0], domain)
        return self.hyperparameters["n_samples"]

    def captum(self, model: DomainModel):
        raise NotImplementedError

    def explain(self, model: DomainModel, features: torch.Tensor, target: int, groups: Groups,
                baseline: torch.Tensor) -> torch.Tensor:
        hp, mask = self.hyperparameters, groups.feature_mask(*features.shape[1:], features.device)
        coefficients = self.captum(model).attribute(  # (1, groups), on the CPU (scikit-learn's fit)
            features, baselines=baseline, target=target, n_samples=hp["n_samples"], feature_mask=mask,
            perturbations_per_eval=hp["perturbations_per_eval"], return_input_shape=False)
        return coefficients.to(features.device, features.dtype)[:, mask[0]]


@register("lime")
class LimeExplainer(SampledExplainer):
    """LIME (Ribeiro et al., KDD 2016; for audio, audioLIME, Haunschmid et al., ISMIR 2020, and Bolaños et
    al., Interspeech 2025), Captum ``Lime``: each perturbation keeps every group with probability ½ and
    puts the baseline in the others; a ridge regression (α = 1, as the reference ``lime`` package; Captum's
    default Lasso α = 0.01 zeroes every coefficient when the logit moves little) fitted with Captum's
    exponential kernel on the cosine distance to the input gives each group's coefficient."""

    def captum(self, model: DomainModel) -> Lime:
        return Lime(model, interpretable_model=SkLearnRidge(alpha=1.0))


@register("kernel-shap")
class KernelShapExplainer(SampledExplainer):
    """Kernel SHAP (Lundberg and Lee, NeurIPS 2017), Captum ``KernelShap``: coalitions of groups drawn with the
    Shapley kernel (the first two: all groups, none), a linear regression gives each group's Shapley value."""

    def captum(self, model: DomainModel) -> KernelShap:
        return KernelShap(model)


def evaluations_per_sample(explainers: list[Explainer], classifier: Classifier,
                           domains: tuple[str, ...] | list[str]) -> dict[str, dict[str, int]]:
    """{label: {domain: model passes per sample}} of the perturbation explainers among ``explainers``, for
    a 5 s clip's grid of each of ``domains`` they explain (run.json's ``evaluations_per_sample``).

    Raises:
        ValueError: a window or bands count that a domain's grid cannot take (``PerturbationExplainer.groups``).
    """
    chosen = [e for e in explainers if isinstance(e, PerturbationExplainer)]
    grids = {d: DomainModel(classifier, DOMAINS[d]).grid(CLIP_SAMPLES) for d in domains} if chosen else {}
    return {e.label: {d: e.evaluations(grids[d], d) for d in domains if d in e.domains} for e in chosen}


def budget_lines(evaluations: dict[str, dict[str, int]], explainers: list[Explainer], samples: int,
                 domains: tuple[str, ...] | list[str], scoring_passes: int) -> list[str]:
    """One line per perturbation explainer: its model passes (per sample, × ``samples``, over the domains),
    and a warning line when they outnumber the rest of the run's passes.

    The rest is counted roughly, per sample and domain: 1 unmasked pass, and for every other method
    ``scoring_passes`` (2: M⊙X and (1−M)⊙X; 14 with the curves) plus its own: ``evaluations`` for a
    perturbation method, else the product of its ``n_samples``, ``n_steps``, ``n_baselines`` (1 without
    them; a forward–backward pass counts as one).
    """
    def own(explainer: Explainer, domain: str) -> int:
        if explainer.label in evaluations:
            return evaluations[explainer.label][domain]
        return math.prod(v for k, v in explainer.hyperparameters.items() if k in PASS_KEYWORDS and isinstance(v, int))

    total = samples * sum(1 + sum(scoring_passes + own(e, d) for e in explainers if d in e.domains) for d in domains)
    lines = []
    for label, passes in evaluations.items():
        mine = samples * sum(passes.values())
        lines.append(f"{label}: {' + '.join(f'{n} ({d})' for d, n in passes.items())} model passes a sample × "
                     f"{samples} samples = {mine} passes; the rest of the run: about {total - mine}")
        if mine > total - mine:
            lines.append(f"warning: {label} needs more model passes ({mine}) than the rest of the run (about "
                         f"{total - mine}) and will take most of its time; fewer n_samples, a longer window or fewer "
                         "bands shorten it")
    return lines
