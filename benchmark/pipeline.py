"""One sample's path, as plain functions, data flowing one way (protocol §1, §3, §5, §6):

clip → contamination (``evaluation_samples``) → STFT / features and one classifier pass
(``prepare_batch``) → explainer → mask → masked passes → metrics (``benchmark.explanations``) →
per-sample rows (``sample_rows``).

Every method of a batch shares the batch's waveforms, STFT, features and its one
unmasked ``ClassifierPass``: its logits give the explained class, its block
representations are handed to the explainers that read them (L-MAC, L2I).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark.config import RunConfig
from classifiers.base import ClassifierPass, DomainModel
from datasets import controlled
from datasets.audio import load_clips
from datasets.contamination import (
    ContaminatedSample,
    clean_samples,
    contaminant,
    draw_from_files,
    draw_ood_mixtures,
    draw_white_noise,
    white_noise,
)
from datasets.folder import recordings
from datasets.sources import AudioData
from foundation.frontend import WIN_LENGTH, log1p_magnitude, stft
from metrics import binarised_spectrogram, ideal_binary_mask


@dataclass
class EvaluationSamples:
    """The evaluated samples of a run and what building their waveforms needs.

    samples: the contaminated samples (§6); base_waves: (N_clips, 80000) evaluation
    clips, row = ``base_index``; contaminants: loaded contaminant waveforms by file;
    labels: the true class of each evaluation clip; peak_normalisation: how each
    mixture is scaled ("max": ÷ its signed maximum, the reference's; "absmax"); cues, distractors:
    (N_clips, 80000) the planted cue and distractor in each clip as loaded (the controlled dataset,
    ``datasets.controlled.planted_waveforms``), or None.
    """

    samples: list[ContaminatedSample]
    base_waves: torch.Tensor
    contaminants: dict
    labels: list[int]
    peak_normalisation: str = "max"
    cues: torch.Tensor | None = None
    distractors: torch.Tensor | None = None
    _clean_targets: dict = field(default_factory=dict, repr=False)

    def waveforms(self, ids: list[int]) -> torch.Tensor:
        """The contaminated waveforms (B, 80000) of samples ``ids``."""
        picked = [self.samples[i] for i in ids]
        return torch.stack([s.apply(self.base_waves[s.base_index], contaminant(s, self.contaminants),
                                    self.peak_normalisation) for s in picked])

    def components(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The target and contaminant terms (B, 80000) each of samples ``ids`` as mixed (before the
        common peak normalisation), or None when a sample is clean (no contaminant). With planted cues
        (the controlled dataset) the target is the cue and the other term everything else
        (``planted_components``)."""
        if self.cues is not None:
            return self.planted_components(ids, self.cues, floor=True)
        picked = [self.samples[i] for i in ids]
        terms = [s.components(self.base_waves[s.base_index], contaminant(s, self.contaminants)) for s in picked]
        if any(t is None for t in terms):
            return None
        return torch.stack([t for t, _ in terms]), torch.stack([c for _, c in terms])

    def planted_components(self, ids: list[int], planted: torch.Tensor,
                           floor: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """A planted term of samples ``ids`` as mixed (``planted``: (N_clips, 80000), the cues or the
        distractors) and the rest of each sample (everything else in it, contaminant included), (B, 80000)
        each, before the common peak normalisation. With ``floor`` the rest gets the term's ``truth_floor``:
        their ideal binary mask is then the planted event's bins."""
        terms, rests = [], []
        for i in ids:
            sample = self.samples[i]
            clip = self.base_waves[sample.base_index]
            mixed = sample.components(clip, contaminant(sample, self.contaminants))
            total, scale = (clip, 1.0) if mixed is None else (mixed[0] + mixed[1], sample.gain_x / clip.norm())
            term = scale * planted[sample.base_index]
            terms.append(term)
            rests.append(total - term + (truth_floor(term, seed=i) if floor else 0.0))
        return torch.stack(terms), torch.stack(rests)

    def distractor_components(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The distractor and the rest of samples ``ids`` (``planted_components``), or None without planted cues."""
        return None if self.distractors is None else self.planted_components(ids, self.distractors, floor=True)

    def clean_targets(self, ids: list[int], device: torch.device) -> torch.Tensor:
        """The binarised clean spectrograms (B, T, 513) bool of samples ``ids``, the target of
        the BCE-clean column; computed once per clip and run (a clip serves several samples)."""
        clips = [self.samples[i].base_index for i in ids]
        missing = sorted(set(clips) - set(self._clean_targets))
        if missing:
            spectra = log1p_magnitude(stft(self.base_waves[missing].to(device)))
            self._clean_targets.update(zip(missing, binarised_spectrogram(spectra)))
        return torch.stack([self._clean_targets[c] for c in clips])


TRUTH_FLOOR_DB = 30.0
"""How far below its peak a planted event's bins reach (``truth_floor``), in dB on the STFT grid."""


def truth_floor(term: torch.Tensor, seed: int) -> torch.Tensor:
    """White noise (N,) (``white_noise(seed)``) whose level in an STFT bin is ``TRUTH_FLOOR_DB`` below the peak
    bin of a tone of ``term``'s peak amplitude A: σ = A·Σw / (2·√Σw²)·10^(−30/20), w the STFT window.

    Added to everything else when a planted event's bins are found (``EvaluationSamples.planted_components``):
    its bins are then those where it exceeds the rest of the clip and lies within about 30 dB of its peak,
    its own support, rather than its window's sidelobes where the background is near silent.
    """
    window = torch.hamming_window(WIN_LENGTH, dtype=torch.float64)
    sigma = float(term.abs().max()) * float(window.sum() / (2 * window.square().sum().sqrt()))
    return (sigma * 10 ** (-TRUTH_FLOOR_DB / 20)) * white_noise(seed, term.shape[-1])


def evaluation_set(config: RunConfig, data: AudioData) -> tuple[list[ContaminatedSample], dict]:
    """The evaluated samples of the condition (§6) and the contaminant waveforms by name.

    ``id``: one noise clip from ``--noise-dir`` per clip at 0 dB; ``ood``: two
    contaminants per clip, ``--contamination`` mixtures (from the split's
    contaminant pool), speech (``--speech-dir``) or white noise; ``clean``: the clips.
    """
    evaluation, split = data.split.evaluation, data.split
    if config.setting == "clean":
        return clean_samples(evaluation), {}
    if config.setting == "id":
        files = recordings(config.noise_dir, "noise recordings", "--noise-dir")
        samples = draw_from_files(evaluation, [str(f) for f in files], "noise", config.seed, per_clip=1)
    elif config.contamination == "mixtures":
        return (draw_ood_mixtures(evaluation, split.contaminant_pool, seed=config.seed),
                dict(zip(split.contaminant_pool["filename"],
                         load_clips(data.paths(split.contaminant_pool), config.peak_normalisation))))
    elif config.contamination == "speech":
        files = recordings(config.speech_dir, "speech recordings", "--speech-dir")
        samples = draw_from_files(evaluation, [str(f) for f in files], "speech", config.seed, per_clip=2)
    elif config.contamination == "white_noise":
        return draw_white_noise(evaluation, config.seed), {}
    else:
        raise ValueError(f"unknown contamination {config.contamination!r}; choose mixtures, speech or white_noise")
    names = sorted({s.contaminant_file for s in samples})
    return samples, dict(zip(names, load_clips([Path(n) for n in names], config.peak_normalisation)))


def evaluation_samples(config: RunConfig, data: AudioData) -> EvaluationSamples:
    """The condition's samples of the evaluation part (the first ``config.limit`` clips' only, if set),
    numbered 0, 1, … in clip order, so that a smaller limit keeps a prefix of the ids."""
    evaluation = data.split.evaluation
    samples, contaminants = evaluation_set(config, data)
    if config.limit is not None:
        samples = [s for s in samples if s.base_index < config.limit]
    evaluated = evaluation.iloc[: max(s.base_index for s in samples) + 1]
    base_waves = load_clips(data.paths(evaluated), config.peak_normalisation)
    planted = controlled.planted_waveforms(evaluated, config.peak_normalisation) if data.name == "controlled" else (
        None, None)
    return EvaluationSamples(samples, base_waves, contaminants, evaluation["target"].astype(int).tolist(),
                             config.peak_normalisation, *planted)


@dataclass
class EvaluationBatch:
    """What every method shares on one batch of one domain, computed once (§5).

    ids: the samples' indices in ``EvaluationSamples.samples``;
    waves: (B, N) evaluated waveforms at 16 kHz; spec: their complex STFT (B, T, 513);
    features: X of the domain (B, T, F); unmasked: the classifier pass on X (logits
    (B, C), block representations); clean_target: the binarised clean spectrograms
    (B, T, 513) bool, the target of the BCE-clean column, or None (mel domain);
    target_dominated: the ideal binary mask (B, T, F) bool on the domain's grid, 1 where the
    target's magnitude exceeds the contaminant's (Loc-AUC), or None (clean samples); in the controlled
    dataset the cue's bins; distractor_dominated: the distractor's bins (all False without one), or None
    (no planted cues).
    """

    ids: list[int]
    waves: torch.Tensor
    spec: torch.Tensor
    features: torch.Tensor
    unmasked: ClassifierPass
    clean_target: torch.Tensor | None = None
    target_dominated: torch.Tensor | None = None
    distractor_dominated: torch.Tensor | None = None


def batch_ids(count: int, batch_size: int) -> list[list[int]]:
    """Sample indices 0..count−1 in consecutive batches of ``batch_size`` (the last one shorter)."""
    return [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]


def prepare_batch(model: DomainModel, evaluation: EvaluationSamples, ids: list[int],
                  device: torch.device) -> EvaluationBatch:
    """The waveforms, STFT, features, BCE-clean target (listenable domain), ideal binary mask
    and the one unmasked classifier pass of samples ``ids``: the work every method of the batch shares."""
    waves = evaluation.waveforms(ids).to(device)
    spec = stft(waves)
    with torch.autocast(device.type, enabled=False):  # the inputs stay float32 under --precision bf16
        features = model.features(waves, spec)
        clean_target = evaluation.clean_targets(ids, device) if model.domain.name == "listenable" else None
        target_dominated, distractor_dominated = (
            None if terms is None else ideal_binary_mask(*(model.features(term.to(device)) for term in terms),
                                                         by_frame=model.domain.name == "waveform")
            for terms in (evaluation.components(ids), evaluation.distractor_components(ids)))
    with torch.no_grad():
        unmasked = model.hearing(spec, waves.shape[1]).forward_with_representations(features)
    return EvaluationBatch(list(ids), waves, spec, features, unmasked, clean_target, target_dominated,
                           distractor_dominated)


def sample_seed(seed: int, sample_id: int, stream: int = 0) -> int:
    """The seed of a method's random draws for one sample (SmoothGrad's noise, SHAP's baselines
    and interpolation points): a function of the run's seed and the sample's index only, so
    that a sample's explanation does not depend on the batch it is in or on the other methods.
    ``stream`` > 0 gives an independent seed for other draws of the same sample (1: the order of
    ties in the deletion and insertion curves)."""
    entropy = [seed, sample_id] + ([stream] if stream else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def sample_rows(evaluation: EvaluationSamples, batch: EvaluationBatch, domain: str, method: str,
                scores: dict[str, torch.Tensor]) -> list[dict]:
    """One per-sample row per sample of the batch: the sample (clip, contaminant, gains, seed),
    the label, the prediction and its confidence, the domain, the method and the metrics."""
    logits = batch.unmasked.logits
    predicted, confidence = logits.argmax(1).tolist(), logits.softmax(1).amax(1).tolist()
    values = {m: v.tolist() for m, v in scores.items()}
    rows = []
    for k, i in enumerate(batch.ids):
        sample = evaluation.samples[i]
        rows.append({"sample_id": i, "clip": sample.base_file, "contamination": sample.contamination,
                     "contaminant": sample.contaminant_file, "noise_seed": sample.noise_seed,
                     "gain_x": sample.gain_x, "gain_c": sample.gain_c, "label": evaluation.labels[sample.base_index],
                     "predicted": predicted[k], "confidence": confidence[k], "domain": domain, "method": method,
                     **{m: v[k] for m, v in values.items()}})
    return rows
