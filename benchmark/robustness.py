"""The re-explanations behind the robustness metrics (``metrics.robustness``; docs/robustness.md), run only with
``--robustness``.

For each evaluated sample (the first ``--robustness-samples`` only, if set) and each of ``--robustness-draws``
draws: a perturbed copy of the input (``metrics.perturb_features``: Gaussian noise of ``--robustness-level``
times the sample's own standard deviation), one classifier pass on it (its logits: ROS and whether the
predicted class changed; its representations: for the explainers that read them), and the explanation of the
perturbed input by the same method, for the class explained on the original, with the same per-sample seed
(``benchmark.explanations.explain``). What is perturbed is what the method reads: the domain's features for a
map on the grid, the waveform for a method that makes waveforms (LMAC-TD), whose map on the grid
(``Explanation.mask``) is then compared, and whose RIS reads the domain's features of both waveforms.

The noise of sample i is drawn from a generator seeded by ``sample_seed(seed, i, stream=2)``, draw after
draw: every method of a sample sees the same perturbed inputs, whatever the batch.
"""
from __future__ import annotations

import math
from argparse import Namespace

import torch

from benchmark.explanations import Explanation, explain
from benchmark.pipeline import EvaluationBatch, sample_seed
from classifiers.base import DomainModel
from foundation.frontend import stft
from methods.base import Explainer
from metrics import RobustnessDraws, draw_values, perturb_rows
from metrics.robustness import DEFAULT_DRAWS, DEFAULT_LEVEL

NOISE_STREAM = 2
"""The ``sample_seed`` stream of the perturbations (0: the explainers' draws, 1: the curves' ties)."""


def robustness_options(args: Namespace) -> dict:
    """The ``RunConfig`` fields of ``--robustness``, ``--robustness-samples``, ``--robustness-draws`` and
    ``--robustness-level`` (parsed with None for "not given"), checked.

    Returns:
        {"robustness", "robustness_samples", "robustness_draws", "robustness_level"}; without ``--robustness``
        {"robustness": False} (the other fields keep their defaults).
    Raises:
        ValueError: a level that is not positive and finite, draws or samples < 1, or one of the three
            settings given without ``--robustness``; the message names the flag and the fix.
    """
    given = {flag: getattr(args, name, None) for flag, name in (
        ("--robustness-samples", "robustness_samples"), ("--robustness-draws", "robustness_draws"),
        ("--robustness-level", "robustness_level"))}
    if not getattr(args, "robustness", False):
        for flag, value in given.items():
            if value is not None:
                raise ValueError(f"{flag} {value}: sets the robustness metrics, which run only with --robustness; "
                                 "add --robustness or drop it")
        return {"robustness": False}
    for flag in ("--robustness-samples", "--robustness-draws"):
        if given[flag] is not None and given[flag] < 1:
            raise ValueError(f"{flag} {given[flag]}: must be a positive integer")
    level = given["--robustness-level"]
    if level is not None and not (math.isfinite(level) and level > 0):
        raise ValueError(f"--robustness-level {level}: must be a positive finite fraction of each input's standard "
                         f"deviation, e.g. {DEFAULT_LEVEL}")
    return {"robustness": True, "robustness_samples": given["--robustness-samples"],
            "robustness_draws": DEFAULT_DRAWS if given["--robustness-draws"] is None else given["--robustness-draws"],
            "robustness_level": DEFAULT_LEVEL if level is None else level}


def perturbed_batch(model: DomainModel, batch: EvaluationBatch, waveform: bool, level: float,
                    generators: list[torch.Generator]) -> EvaluationBatch:
    """``batch`` with each input perturbed once (row k by ``generators[k]``) and the classifier pass on it:
    its features (B, T, F) perturbed, or with ``waveform`` its waveforms (B, N) perturbed and their STFT and
    features recomputed. Only what ``explain`` reads is filled in (no localisation targets)."""
    waves, spec = batch.waves, batch.spec
    if waveform:
        waves = perturb_rows(batch.waves, level, generators)
        spec = stft(waves)
        with torch.autocast(waves.device.type, enabled=False):
            features = model.features(waves, spec)
    else:
        features = perturb_rows(batch.features, level, generators)
    with torch.no_grad():
        unmasked = model.hearing(spec, waves.shape[1]).forward_with_representations(features)
    return EvaluationBatch(list(batch.ids), waves, spec, features, unmasked)


def robustness_draws(model: DomainModel, explainer: Explainer, batch: EvaluationBatch, explanation: Explanation,
                     seed: int, draws: int, level: float, samples: int | None) -> RobustnessDraws:
    """The ``draws`` perturbed re-explanations of the batch's samples with an id below ``samples`` (all when
    None) and their values (``metrics.draw_values``), compared with ``explanation`` of the originals.

    Args:
        model: the classifier seen from the batch's domain (not bound to a phase; ``explain`` binds it).
        explainer: the method that made ``explanation``.
        batch: the prepared batch (``benchmark.pipeline.prepare_batch``); its ids are consecutive.
        explanation: the method's explanation of ``batch`` (its mask (B, T_m, F) is e).
        seed: the run's seed (the explainer's per-sample seeds and the noise's, ``sample_seed``).
        draws: perturbed copies per sample, ≥ 1; level: the noise's fraction of each input's std, > 0.
    Returns:
        (B, draws) arrays; rows of the samples not evaluated are NaN.
    """
    evaluated = sum(1 for i in batch.ids if samples is None or i < samples)
    if evaluated == 0:
        return RobustnessDraws.empty(len(batch.ids), draws)
    part = EvaluationBatch(batch.ids[:evaluated], batch.waves[:evaluated], batch.spec[:evaluated],
                           batch.features[:evaluated], batch.unmasked.rows(0, evaluated))
    target = part.unmasked.logits.argmax(1)
    generators = [torch.Generator().manual_seed(sample_seed(seed, i, NOISE_STREAM)) for i in part.ids]
    values = []
    for _ in range(draws):
        perturbed = perturbed_batch(model, part, explainer.makes_waveforms, level, generators)
        again = explain(model, explainer, perturbed, seed, target)
        values.append(draw_values(part.features, perturbed.features, part.unmasked.logits, perturbed.unmasked.logits,
                                  explanation.mask[:evaluated], again.mask))
    return RobustnessDraws.stack(values, len(batch.ids))


def robustness_note(draws: int, level: float, samples: int | None) -> str:
    """The line under a table that says how the robustness columns were computed."""
    which = "every evaluated sample" if samples is None else f"the first {samples} evaluated samples (the others' " \
        "cells empty)"
    return (f"Max-Sens, Avg-Sens, RIS, ROS: {draws} draws per sample of Gaussian noise with σ = {level:g} × the "
            "input's own standard deviation on the domain's grid (LMAC-TD: on the waveform), each explained again "
            f"for the original's class with the same seed; {which}; e = the mask (docs/robustness.md)")
