"""L2I, Listen to Interpret (Parekh et al., NeurIPS 2022), as the L-MAC paper's baseline (paper §4.1).

An NMF dictionary W (513 × K, K = 100) is learned with scikit-learn on training
log1p-magnitude spectra, its columns scaled to unit L2 norm (as the original L2I's
``NMF_D``). An interpreter ψ maps the classifier's representations (CNN14: blocks 6, 5, 4) to
NMF activations H (K × T) so that W·H reconstructs the input, and θ (learned time
pooling, initialised to the mean over time, + linear layer) maps H to the classifier's
prediction. For class c, the relevance of component k is r_k = θ_ck·z_k / max_k |θ_ck·z_k|
with z the time-pooled activations; the components with r_k > RTH form the mask
``W_L H_L / (W H + ε)`` on the STFT grid (values in [0, 1]).

Training keeps the epoch whose θ agrees best with the classifier on the validation clips
(both reference implementations keep their best-fidelity checkpoint). Why the dictionary
scaling and the pooling's start matter, measured on the CPU profile: docs/studies.md, "L2I".
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.decomposition import NMF
from torch import nn
from tqdm import tqdm

from classifiers.base import DomainModel
from datasets.audio import CLIP_SAMPLES
from foundation import distributed, precision
from foundation.checkpoints import cached_training, training_record
from foundation.frontend import DOMAINS, HOP_LENGTH, N_BINS, log1p_magnitude, stft
from foundation.precision import autocast
from methods.base import Explainer, TrainingResources
from methods.registry import register

FRAMES = 1 + CLIP_SAMPLES // HOP_LENGTH  # 431 STFT frames of a 5 s clip


class L2IInterpreter(nn.Module):
    """ψ (representations → activations) and θ (activations → class logits), with the NMF dictionary.

    Args:
        representation_channels: channels of the representations read, deepest first: CNN14's
            blocks 6, 5, 4 (paper: 2048, 1024, 512) with the "speechbrain-cnn14" layout.
        n_components: K, NMF components.
        n_classes: classes of the classifier.
        frames: T of the explained inputs (431).
        layout: "speechbrain-cnn14": blocks 6 and 5 upsampled ×2, padded to block 4's grid and
            concatenated with it; "grid" (any classifier): each representation convolved to the
            fewest channels among them and resized (bilinear) to the largest grid, then concatenated.

    ``activations(representations)`` → H (B, K, T) ≥ 0; ``theta(H)`` → logits (B, n_classes).
    ``dictionary`` (513, K) ≥ 0 is a buffer set from scikit-learn's NMF.
    """

    def __init__(self, representation_channels: tuple[int, ...], n_components: int, n_classes: int,
                 frames: int = FRAMES, layout: str = "speechbrain-cnn14"):
        super().__init__()
        self.layout = layout
        if layout == "speechbrain-cnn14":
            c6, c5, c4 = representation_channels[:3]
            self.from_block6 = nn.Conv2d(c6, c4, 3, padding="same")
            self.from_block5 = nn.Conv2d(c5, c4, 3, padding="same")
            merged = 3 * c4
        else:
            c4 = min(representation_channels)
            self.inputs = nn.ModuleList(nn.Conv2d(c, c4, 3, padding="same") for c in representation_channels)
            merged = len(representation_channels) * c4
        self.merge = nn.Sequential(nn.Conv2d(merged, c4, 3, padding="same"), nn.BatchNorm2d(c4), nn.ReLU())
        self.to_activations = nn.Conv2d(c4, n_components, 3, padding="same")
        self.time_pooling = nn.Linear(frames, 1, bias=False)
        nn.init.constant_(self.time_pooling.weight, 1.0 / frames)  # start as the mean over time: z ≥ 0
        self.class_weights = nn.Linear(n_components, n_classes, bias=False)
        self.register_buffer("dictionary", torch.zeros(N_BINS, n_components))
        self.frames = frames

    def activations(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.layout == "speechbrain-cnn14":
            h6, h5, h4 = representations[:3]
            upsampled = [F.relu(conv(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)))
                         for conv, h in ((self.from_block6, h6), (self.from_block5, h5))]
            upsampled = [F.pad(h, (0, h4.shape[3] - h.shape[3])) for h in upsampled]  # 4 → 5 frequency cells
            merged = torch.cat([*upsampled, h4], dim=1)
        else:
            largest = tuple(max((h.shape[2:] for h in representations), key=lambda s: s[0] * s[1]))
            merged = torch.cat([F.relu(conv(F.interpolate(h, size=largest, mode="bilinear", align_corners=True)))
                                for conv, h in zip(self.inputs, representations)], dim=1)
        merged = F.interpolate(merged, size=(self.frames, 1), mode="bilinear", align_corners=True)
        return F.relu(self.to_activations(self.merge(merged))).squeeze(3)

    def forward(self, representations: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """θ's logits (B, n_classes) and the reconstruction W·H (B, T, 513) of the representations:
        what training needs, in one call (DDP synchronises the gradients of ``forward``)."""
        activations = self.activations(representations)
        return self.theta(activations), self.reconstruction(activations)

    def pooled(self, activations: torch.Tensor) -> torch.Tensor:
        """z (B, K): activations pooled over time with learned weights."""
        return self.time_pooling(activations).squeeze(2)

    def theta(self, activations: torch.Tensor) -> torch.Tensor:
        return self.class_weights(self.pooled(activations))

    def reconstruction(self, activations: torch.Tensor) -> torch.Tensor:
        """W·H as (B, T, 513)."""
        return torch.einsum("fk,bkt->btf", self.dictionary, activations)


def nmf_dictionary(spectra: torch.Tensor, n_components: int, seed: int, max_frames: int = 20000) -> torch.Tensor:
    """NMF dictionary (513, K) ≥ 0 of log1p-magnitude frames (N, T, 513), with scikit-learn's ``NMF``,
    each column scaled to unit L2 norm (the activations absorb the scale).

    Unscaled, the columns' norms span 14 … 2,945 on the CPU profile's training clips, so
    that one component dominates every θ·z and its sign decides the whole map.
    At most ``max_frames`` frames, evenly spaced, are used to bound the cost.
    """
    frames = spectra.reshape(-1, spectra.shape[-1])
    frames = frames[torch.linspace(0, len(frames) - 1, min(max_frames, len(frames))).long()]
    nmf = NMF(n_components=n_components, init="nndsvda", max_iter=300, random_state=seed)
    nmf.fit(frames.double().numpy())
    dictionary = torch.from_numpy(nmf.components_.T).float()
    return dictionary / dictionary.norm(dim=0, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def theta_agreement(interpreter: L2IInterpreter, model: DomainModel, features: torch.Tensor, batch_size: int,
                    phase: torch.Tensor | None = None, length: int = CLIP_SAMPLES) -> float:
    """Share in [0, 1] of inputs X (N, T, 513) on which θ predicts the classifier's class: θ's fidelity.
    ``phase`` (N, T, 513) and ``length``: the inputs' phase and waveform length, for a model that hears
    the listenable domain through the inverse STFT (``DomainModel.needs_phase``)."""
    was_training = interpreter.training
    interpreter.eval()
    agree = torch.zeros((), dtype=torch.long, device=interpreter.dictionary.device)
    for start in range(0, len(features), batch_size):
        chunk = features[start:start + batch_size].to(interpreter.dictionary.device)
        heard = model if phase is None else model.with_phase(phase[start:start + batch_size], length)
        logits, representations = heard.forward_with_representations(chunk)
        agree += (interpreter.theta(interpreter.activations(representations)).argmax(1) == logits.argmax(1)).sum()
    interpreter.train(was_training)
    return agree.item() / len(features)  # one host sync per call


@register("l2i")
class L2IExplainer(Explainer):
    """L2I mask (B, 431, 513) in [0, 1] for the target class.

    Keywords: ``rth`` relevance threshold (0.2; the paper also reports 0.4),
    ``n_components`` K (100), ``epochs`` (default: the profile's ``l2i_epochs``),
    ``lr`` (1e-3), ``lambda_fidelity`` weight of the KL term between θ and the
    classifier (1), ``eps`` of the mask's denominator (1e-8).
    """

    domains = ("listenable",)
    returns_mask = True
    reads_representations = True
    requires = ("representations",)
    needs_validation_clips = True

    VALUE_RANGES = {"rth": (0.0, 1.0)}

    def __init__(self, rth: float = 0.2, n_components: int = 100, epochs: int | None = None, lr: float = 1e-3,
                 lambda_fidelity: float = 1.0, eps: float = 1e-8):
        super().__init__(rth=rth, n_components=n_components, epochs=epochs, lr=lr,
                         lambda_fidelity=lambda_fidelity, eps=eps)
        self.interpreter: L2IInterpreter | None = None
        self.validation_agreement: float | None = None

    def fit(self, resources: TrainingResources) -> None:
        """Train ψ and θ (cached) on the training clips; keep the epoch whose θ agrees best with the
        classifier on ``resources.valid_waveforms``.

        Raises:
            ValueError: no validation clips to choose the epoch on (a run refuses such a split earlier).
        """
        if resources.valid_waveforms is None or not len(resources.valid_waveforms):
            raise ValueError("L2I keeps the epoch whose θ agrees best with the classifier on the validation clips, "
                             "and there are none; pass --folds with a validation fold")
        hp = dict(self.hyperparameters)
        hp["epochs"] = hp["epochs"] or resources.profile["l2i_epochs"]
        self.hyperparameters = hp
        classifier = resources.classifier
        channels = tuple(c for c, _, _ in classifier.representation_shapes(CLIP_SAMPLES))
        torch.manual_seed(resources.seed)  # the same initial interpreter whatever ran before
        interpreter = L2IInterpreter(channels, hp["n_components"], len(classifier.class_names),
                                     layout=classifier.decoder_layout)
        trained = {k: v for k, v in hp.items() if k not in {"rth", "eps"}}  # the mask step is not trained
        config = {"kind": "l2i", "classifier": resources.classifier_key, "training_data": resources.data_key,
                  "validation_data": resources.valid_key, "seed": resources.seed,
                  "batch_size": resources.profile["batch_size"], **trained,
                  "recipe": "unit-norm dictionary columns, mean-pooling start, best validation agreement kept",
                  **precision.key_part(resources.precision)}
        key = cached_training(interpreter, "l2i", config, resources.cache_dir,
                              lambda module: self._train(module, resources), resources.reference_dir, resources.models,
                              resources.expected_models)
        log = training_record(Path(resources.models[-1]["path"]))["log"]
        self.validation_agreement = log["best_valid_agreement"]
        resources.log.append({"l2i_checkpoint": key, "l2i_theta_valid_agreement": self.validation_agreement,
                              "l2i_best_epoch": log["best_epoch"]})
        self.interpreter = interpreter.to(resources.device).eval()

    def notes(self) -> list[str]:
        if self.validation_agreement is None:
            return []
        return [f"{self.label}: θ predicts the classifier's class on {100 * self.validation_agreement:.0f} % of the "
                "validation clips (its fidelity to the classifier; the epoch kept is the best on them)"]

    def _train(self, interpreter: L2IInterpreter, resources: TrainingResources) -> dict:
        """Train in place: loss MSE(W·H, X) + λ_fid·KL(classifier ‖ θ) on the training clips' X =
        log1p|STFT| (W fixed); returns the per-epoch log and the best epoch's validation agreement."""
        hp = self.hyperparameters
        device = resources.device
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        model = DomainModel(resources.classifier, DOMAINS["listenable"]).eval()

        length = resources.train_waveforms.shape[1]

        def spectra_of(waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # kept on the device
            specs = [stft(chunk.to(device)) for chunk in waveforms.split(32)]
            phase = torch.cat([spec.angle() for spec in specs]) if model.needs_phase else None
            return torch.cat([log1p_magnitude(spec) for spec in specs]), phase

        (spectra, phases), (valid, valid_phases) = spectra_of(resources.train_waveforms), \
            spectra_of(resources.valid_waveforms)
        interpreter.dictionary.copy_(nmf_dictionary(spectra.cpu(), hp["n_components"], resources.seed))
        interpreter.to(device).train()
        optimizer = torch.optim.Adam(interpreter.parameters(), lr=hp["lr"])
        history, best = [], (-1.0, 0, None)
        current = distributed.ranks()
        network = distributed.parallel(interpreter, current)
        for epoch in tqdm(range(hp["epochs"]), desc="train L2I", unit="epoch"):
            totals = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("reconstruction", "fidelity")}
            seen = 0
            for batch in distributed.epoch_batches(len(spectra), resources.profile["batch_size"], generator, epoch,
                                                   resources.seed, current):
                features = spectra[batch.to(device)]
                heard = model if phases is None else model.with_phase(phases[batch.to(device)], length)
                with autocast(device, resources.precision):
                    with torch.no_grad():
                        logits, representations = heard.forward_with_representations(features)
                    theta_logits, reconstructed = network(representations)
                    reconstruction = F.mse_loss(reconstructed.float(), features)
                    fidelity = F.kl_div(theta_logits.float().log_softmax(1), logits.float().log_softmax(1),
                                        log_target=True, reduction="batchmean")
                loss = reconstruction + hp["lambda_fidelity"] * fidelity
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                totals["reconstruction"] += reconstruction.detach().double() * len(batch)
                totals["fidelity"] += fidelity.detach().double() * len(batch)
                seen += len(batch)
            agreement = theta_agreement(interpreter, model, valid, resources.profile["batch_size"], valid_phases,
                                        length)
            history.append({"epoch": epoch + 1, **{k: v.item() / seen for k, v in totals.items()},  # this rank's
                            "valid_agreement": agreement})
            if agreement > best[0]:
                best = (agreement, epoch + 1, copy.deepcopy(interpreter.state_dict()))
        interpreter.load_state_dict(best[2])
        interpreter.eval()
        return {"history": history, "best_epoch": best[1], "best_valid_agreement": best[0]}

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor,
                  representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The mask (B, 431, 513) of the components relevant to ``target`` (B,), from the
        classifier's block representations on ``features`` (the caller's, else a pass of its own)."""
        if self.interpreter is None:
            raise RuntimeError("L2I is not trained: call fit() (the harness does)")
        interpreter = self.interpreter
        with torch.no_grad():
            if representations is None:
                representations = model.forward_with_representations(features).representations
            activations = interpreter.activations(representations)  # (B, K, T)
            relevance = interpreter.class_weights.weight[target] * interpreter.pooled(activations)  # (B, K)
            relevance = relevance / relevance.abs().amax(1, keepdim=True).clamp_min(1e-12)
            selected = (relevance > self.hyperparameters["rth"]).float().unsqueeze(2)
            whole = interpreter.reconstruction(activations)
            relevant = interpreter.reconstruction(activations * selected)
            return relevant / (whole + self.hyperparameters["eps"])
