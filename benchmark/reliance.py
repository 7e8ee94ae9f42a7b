"""Verified reliance: before a classifier's maps are scored against the planted cue of the controlled
dataset (``datasets.controlled``), interventions show that the classifier uses the cue's bins and
nothing else (docs/ground-truth.md). On the clean evaluation clips, in each domain of the run:

- accuracy on X: the classifier reads the cue (at least ``MIN_ACCURACY``);
- cue removed: the cue's bins (its ideal binary mask on the domain's grid) replaced by those of the same
  clip without the cue: accuracy falls to chance (not above the majority class's share, one-sided
  binomial test at ``ALPHA``);
- cue only: every other bin replaced by those of another clip without its cue (the next clip of the
  evaluation part): accuracy stays (at least ``MIN_ACCURACY``).

A classifier that fails a check is refused as a ground-truth model (``GroundTruthError``, exit 2 with the
figures): its maps cannot be judged against a cue it does not use.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from scipy import stats

from benchmark.pipeline import EvaluationSamples, batch_ids, prepare_batch
from classifiers.base import Classifier, DomainModel
from foundation.frontend import DOMAINS

MIN_ACCURACY = 0.8
"""Accuracy a ground-truth model needs on the clips and with only their cue, in [0, 1]."""
ALPHA = 0.01
"""Significance level of the test that the cue-removed accuracy is above chance."""


class GroundTruthError(ValueError):
    """The classifier does not rely on the planted cue (the figures are in the message)."""


@dataclass
class Reliance:
    """The reliance checks of one domain: n clips; chance = the largest class share among their labels;
    accuracy, cue_removed, cue_only in [0, 1]; p_removed: one-sided binomial p-value that cue_removed is
    above chance."""

    domain: str
    n: int
    chance: float
    accuracy: float
    cue_removed: float
    cue_only: float
    p_removed: float

    @property
    def failures(self) -> list[str]:
        """What the checks found wrong (empty: the classifier relies on the cue in this domain)."""
        wrong = []
        if self.accuracy < MIN_ACCURACY:
            wrong.append(f"accuracy on the clips {100 * self.accuracy:.1f} % < {100 * MIN_ACCURACY:.0f} %")
        if self.p_removed < ALPHA:
            wrong.append(f"with the cue removed {100 * self.cue_removed:.1f} %, above chance "
                         f"({100 * self.chance:.1f} %, p = {self.p_removed:.2g})")
        if self.cue_only < MIN_ACCURACY:
            wrong.append(f"with only the cue {100 * self.cue_only:.1f} % < {100 * MIN_ACCURACY:.0f} %")
        return wrong

    def text(self) -> str:
        """One line of figures, for the notes under the table and the error message."""
        return (f"{self.domain}: accuracy {100 * self.accuracy:.1f} %, cue removed {100 * self.cue_removed:.1f} % "
                f"(chance {100 * self.chance:.1f} %, p above chance {self.p_removed:.2g}), cue only "
                f"{100 * self.cue_only:.1f} %, n = {self.n}")


def check_domain(classifier: Classifier, clips: EvaluationSamples, domain: str, device: torch.device,
                 batch_size: int) -> Reliance:
    """The three accuracies of ``classifier`` on the clean controlled ``clips`` in ``domain`` (module doc)."""
    model = DomainModel(classifier, DOMAINS[domain], per_sample=device.type == "cpu").eval()
    count = len(clips.samples)
    parts = {"features": [], "truth": [], "rest": [], "spec": [], "predicted": []}
    for ids in batch_ids(count, batch_size):
        batch = prepare_batch(model, clips, ids, device)  # its truth: the cue's bins
        _, rest = clips.planted_components(ids, clips.cues)  # the clip without its cue
        with torch.no_grad():
            parts["rest"].append(model.features(rest.to(device)))
        parts["features"].append(batch.features)
        parts["truth"].append(batch.target_dominated)
        parts["spec"].append(batch.spec)
        parts["predicted"].append(batch.unmasked.logits.argmax(1))
    features, truth, rest, spec = (torch.cat(parts[k]) for k in ("features", "truth", "rest", "spec"))
    labels = torch.tensor([clips.labels[s.base_index] for s in clips.samples], device=device)
    length = clips.base_waves.shape[1]

    def correct(inputs: torch.Tensor) -> int:
        """How many of the inputs X' (heard with their own clip's phase) the classifier labels right."""
        hits = 0
        for ids in batch_ids(count, batch_size):
            with torch.no_grad():
                hits += int((model.hearing(spec[ids], length)(inputs[ids]).argmax(1) == labels[ids]).sum())
        return hits

    removed = correct(torch.where(truth, rest, features))
    cue_only = correct(torch.where(truth, features, rest.roll(-1, dims=0)))  # the rest: the next clip's, cue-free
    majority = int(torch.bincount(labels).max())
    return Reliance(domain, count, majority / count, float((torch.cat(parts["predicted"]) == labels).float().mean()),
                    removed / count, cue_only / count,
                    float(stats.binomtest(removed, count, majority / count, alternative="greater").pvalue))


def check_reliance(classifier: Classifier, clips: EvaluationSamples, domains: list[str], device: torch.device,
                   batch_size: int, flag: str) -> list[Reliance]:
    """``check_domain`` in each of ``domains``; raises unless the classifier passes every check.

    Args:
        clips: the clean controlled evaluation clips with their planted cues (``EvaluationSamples.cues``).
        flag: how the run names the classifier (e.g. "--classifier ast"), for the message.
    Raises:
        GroundTruthError: a check failed; the message gives every domain's figures and the way out.
    """
    results = [check_domain(classifier, clips, domain, device, batch_size) for domain in domains]
    failed = [f"{r.domain}: {'; '.join(r.failures)}" for r in results if r.failures]
    if failed:
        raise GroundTruthError(
            f"{flag} does not rely on the planted cue, so its maps cannot be scored against it: "
            f"{' | '.join(failed)} (figures: {' | '.join(r.text() for r in results)}); a ground-truth "
            "model is trained on the real labels (no --shuffle-labels) until it reads the cue: a larger model or "
            "schedule (--profile paper), or more backgrounds (a fuller ESC-50 copy as --data-root)")
    return results


def as_record(results: list[Reliance]) -> list[dict]:
    """The checks as JSON-ready dicts (run.json)."""
    return [dataclasses.asdict(r) for r in results]
