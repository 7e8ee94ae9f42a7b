"""A batch's explanation and its scores (protocol §3, §5): explainer → ``Explanation`` (``explain``) →
masked passes → metrics (``score``), and the deletion and insertion curves (``curve_probabilities``).

An explanation is a mask on the domain's grid; for a method that makes waveforms (LMAC-TD) it is the
waveform x_in and its complement x_out, with the map ``interpretation_mask`` on the grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.pipeline import EvaluationBatch, sample_seed
from classifiers.base import DomainModel
from foundation.frontend import apply_mask, listenable_waveform
from methods.base import Explainer, check_map, interpretation_mask
from metrics import CURVE_FRACTIONS, MetricInputs, RobustnessDraws, first_bins, rank_bins, registered_metrics


@dataclass
class Explanation:
    """One method's explanation of a batch.

    mask: (B, T_m, F) in [0, 1] on the domain's grid; waves: for a method that makes waveforms
    (``Explainer.makes_waveforms``), the explanation x_in and its complement x_out, (B, N) each, and
    features: the domain's features of each, (B, T, F); else None.
    """

    mask: torch.Tensor
    waves: tuple[torch.Tensor, torch.Tensor] | None = None
    features: tuple[torch.Tensor, torch.Tensor] | None = None

    def listenable(self, batch: EvaluationBatch) -> torch.Tensor:
        """What a listener hears (B, N): x_in, or ``ISTFT(expm1(M ⊙ X) · exp(j·phase))`` of a mask on the STFT grid."""
        if self.waves is not None:
            return self.waves[0]
        return listenable_waveform(self.mask, batch.spec, batch.waves.shape[1])

    def masked_inputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask-in and mask-out inputs of the domain: M⊙X and (1−M)⊙X of ``features`` X, or the features
        of x_in and x_out."""
        return apply_mask(features, self.mask) if self.features is None else self.features


def explain(model: DomainModel, explainer: Explainer, batch: EvaluationBatch, seed: int,
            target: torch.Tensor | None = None) -> Explanation:
    """The explanation of ``explainer`` for the classes the unmasked pass predicts, or for ``target`` (B,) long
    when given (a perturbed input explained for the class of its original, ``benchmark.robustness``).

    With ``model.per_sample`` (CPU) the explainer sees one sample at a time, as the
    model's passes do, with torch's generator seeded by ``sample_seed(seed, id)`` for
    each sample: every per-sample result is then the same whatever the batch size, at
    no cost on CPU. Batched (GPU), the generator is seeded once per batch, from its first
    sample. Explainers that read representations get the unmasked pass's. A model that hears the
    listenable domain through the inverse STFT is explained one sample at a time on any device, each
    with its own phase (``DomainModel.hearing``).

    Raises:
        InvalidExplanationError: a map off the grid, empty, or with NaN/inf values.
    """
    target = batch.unmasked.logits.argmax(1) if target is None else target
    model = model.hearing(batch.spec, batch.waves.shape[1])
    batched = not model.per_sample and model.phase is None
    rows = [slice(0, len(batch.ids))] if batched else [slice(k, k + 1) for k in range(len(batch.ids))]
    if explainer.makes_waveforms:
        pairs = [explainer.waveforms(batch.waves[r], batch.unmasked.rows(r.start, r.stop).representations)
                 for r in rows]
        waves = torch.cat([x_in for x_in, _ in pairs]), torch.cat([x_out for _, x_out in pairs])
        with torch.autocast(batch.features.device.type, enabled=False):
            features = model.features(waves[0]), model.features(waves[1])
        mask = interpretation_mask(features[0], batch.features)
        check_map(mask, batch.features, explainer.name)
        return Explanation(mask, waves, features)
    masks = []
    for r in rows:
        torch.manual_seed(sample_seed(seed, batch.ids[r.start]))
        masks.append(explainer.mask(model if batched else model.sample(r.start), batch.features[r], target[r],
                                    batch.unmasked.rows(r.start, r.stop).representations))
    return Explanation(torch.cat(masks))


def score(model: DomainModel, explanation: Explanation, batch: EvaluationBatch, ad_softmax_twice: bool,
          curve_seeds: list[int] | None = None,
          robustness: RobustnessDraws | None = None) -> dict[str, torch.Tensor | np.ndarray]:
    """Every registered metric that applies to the run (``metrics.registered_metrics``) for the batch's
    explanation, each (B,) per sample, in registration order (protocol §5).

    Two classifier passes besides the batch's unmasked one: p_in on M⊙X and p_out on (1−M)⊙X (for a
    method that makes waveforms, on the domain's features of x_in and x_out). With ``curve_seeds`` (one
    per sample, for the random order of ties) also the deletion and insertion curves
    (``curve_probabilities``, on the map): 12 more passes, and the metrics that read them. With ``robustness``
    (the batch's re-explained perturbed draws, ``benchmark.robustness``) also the robustness metrics.
    """
    model = model.hearing(batch.spec, batch.waves.shape[1])
    mask = explanation.mask
    masked_in, masked_out = explanation.masked_inputs(batch.features)
    with torch.no_grad():
        logits_in, logits_out = model(masked_in), model(masked_out)
    inputs = MetricInputs(mask, batch.unmasked.logits, logits_in, logits_out, ad_softmax_twice, batch.clean_target,
                          batch.target_dominated,
                          None if curve_seeds is None else curve_probabilities(model, mask, batch, curve_seeds),
                          batch.distractor_dominated, robustness=robustness)
    return {name: metric.compute(inputs) for name, metric in registered_metrics().items() if metric.applies(inputs)}


def curve_probabilities(model: DomainModel, mask: torch.Tensor, batch: EvaluationBatch,
                        seeds: list[int]) -> dict[str, np.ndarray]:
    """Insertion and deletion curves of the masks (B, T_m, F).

    For each k in ``CURVE_FRACTIONS`` the binary mask of the k·T_m·F bins the mask ranks first
    (ties in random order, seeded by ``seeds``) is applied as any mask is (``apply_mask``):
    "Ins" = p_c on the kept bins alone, "Del" = p_c with them removed, c the class the unmasked
    pass predicts. Each (B, len(CURVE_FRACTIONS)) float64 in [0, 1]. ``model``: bound to the
    batch's phase (``DomainModel.hearing``), as ``score`` hands it on.
    """
    target = batch.unmasked.logits.argmax(1, keepdim=True)
    ranking = rank_bins(mask, seeds)
    inserted, deleted = [], []
    for fraction in CURVE_FRACTIONS:
        kept_in, kept_out = apply_mask(batch.features, first_bins(ranking, fraction, mask.shape))
        with torch.no_grad():
            inserted.append(model(kept_in).double().softmax(1).gather(1, target)[:, 0])
            deleted.append(model(kept_out).double().softmax(1).gather(1, target)[:, 0])
    return {"Ins": torch.stack(inserted, 1).cpu().numpy(), "Del": torch.stack(deleted, 1).cpu().numpy()}
