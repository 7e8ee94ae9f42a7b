"""L2I, Listen to Interpret (Parekh et al., NeurIPS 2022), as the L-MAC paper's baseline (BENCHMARK.md §3).

An NMF dictionary W (513 × K, K = 100) is learned with scikit-learn on training
log1p-magnitude spectra. An interpreter ψ maps the classifier's block 6, 5, 4
representations to NMF activations H (K × T) so that W·H reconstructs the input,
and θ (learned time pooling + linear layer) maps H to the classifier's prediction.
For class c, the relevance of component k is r_k = θ_ck·z_k / max_k |θ_ck·z_k| with
z the time-pooled activations; the components with r_k > RTH form the mask
``W_L H_L / (W H + ε)`` on the STFT grid (values in [0, 1]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.decomposition import NMF
from torch import nn
from tqdm import tqdm

from benchmark.checkpoints import cached_training
from benchmark.classifier import DomainModel
from benchmark.frontend import DOMAINS, HOP_LENGTH, N_BINS, log1p_magnitude, stft
from datasets.audio import CLIP_SAMPLES
from methods.base import Explainer, TrainingResources, register

FRAMES = 1 + CLIP_SAMPLES // HOP_LENGTH  # 431 STFT frames of a 5 s clip


class L2IInterpreter(nn.Module):
    """ψ (representations → activations) and θ (activations → class logits), with the NMF dictionary.

    Args:
        representation_channels: channels of classifier blocks 6, 5, 4 (paper: 2048, 1024, 512).
        n_components: K, NMF components.
        n_classes: classes of the classifier.
        frames: T of the explained inputs (431).

    ``activations(representations)`` → H (B, K, T) ≥ 0; ``theta(H)`` → logits (B, n_classes).
    ``dictionary`` (513, K) ≥ 0 is a buffer set from scikit-learn's NMF.
    """

    def __init__(self, representation_channels: tuple[int, int, int], n_components: int, n_classes: int,
                 frames: int = FRAMES):
        super().__init__()
        c6, c5, c4 = representation_channels
        self.from_block6 = nn.Conv2d(c6, c4, 3, padding="same")
        self.from_block5 = nn.Conv2d(c5, c4, 3, padding="same")
        self.merge = nn.Sequential(nn.Conv2d(3 * c4, c4, 3, padding="same"), nn.BatchNorm2d(c4), nn.ReLU())
        self.to_activations = nn.Conv2d(c4, n_components, 3, padding="same")
        self.time_pooling = nn.Linear(frames, 1, bias=False)
        self.class_weights = nn.Linear(n_components, n_classes, bias=False)
        self.register_buffer("dictionary", torch.zeros(N_BINS, n_components))
        self.frames = frames

    def activations(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h6, h5, h4 = representations[:3]
        upsampled = [F.relu(conv(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)))
                     for conv, h in ((self.from_block6, h6), (self.from_block5, h5))]
        upsampled = [F.pad(h, (0, h4.shape[3] - h.shape[3])) for h in upsampled]  # 4 → 5 frequency cells
        merged = torch.cat([*upsampled, h4], dim=1)
        merged = F.interpolate(merged, size=(self.frames, 1), mode="bilinear", align_corners=True)
        return F.relu(self.to_activations(self.merge(merged))).squeeze(3)

    def pooled(self, activations: torch.Tensor) -> torch.Tensor:
        """z (B, K): activations pooled over time with learned weights."""
        return self.time_pooling(activations).squeeze(2)

    def theta(self, activations: torch.Tensor) -> torch.Tensor:
        return self.class_weights(self.pooled(activations))

    def reconstruction(self, activations: torch.Tensor) -> torch.Tensor:
        """W·H as (B, T, 513)."""
        return torch.einsum("fk,bkt->btf", self.dictionary, activations)


def nmf_dictionary(spectra: torch.Tensor, n_components: int, seed: int, max_frames: int = 20000) -> torch.Tensor:
    """NMF dictionary (513, K) of log1p-magnitude frames (N, T, 513), with scikit-learn's ``NMF``.

    At most ``max_frames`` frames, evenly spaced, are used to bound the cost.
    """
    frames = spectra.reshape(-1, spectra.shape[-1])
    frames = frames[torch.linspace(0, len(frames) - 1, min(max_frames, len(frames))).long()]
    nmf = NMF(n_components=n_components, init="nndsvda", max_iter=300, random_state=seed)
    nmf.fit(frames.double().numpy())
    return torch.from_numpy(nmf.components_.T).float()


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

    def __init__(self, rth: float = 0.2, n_components: int = 100, epochs: int | None = None, lr: float = 1e-3,
                 lambda_fidelity: float = 1.0, eps: float = 1e-8):
        super().__init__(rth=rth, n_components=n_components, epochs=epochs, lr=lr,
                         lambda_fidelity=lambda_fidelity, eps=eps)
        self.interpreter: L2IInterpreter | None = None

    def fit(self, resources: TrainingResources) -> None:
        hp = dict(self.hyperparameters)
        hp["epochs"] = hp["epochs"] or resources.profile["l2i_epochs"]
        self.hyperparameters = hp
        n_classes = resources.classifier.head.out_features
        torch.manual_seed(resources.seed)  # the same initial interpreter whatever ran before
        interpreter = L2IInterpreter(resources.classifier.embedding_model.representation_channels[:3],
                                     hp["n_components"], n_classes)
        trained = {k: v for k, v in hp.items() if k not in {"rth", "eps"}}  # the mask step is not trained
        config = {"kind": "l2i", "classifier": resources.classifier_key, "training_data": resources.data_key,
                  "seed": resources.seed,
                  "batch_size": resources.profile["batch_size"], **trained}
        key = cached_training(interpreter, "l2i", config, resources.cache_dir,
                              lambda module: self._train(module, resources))
        resources.log.append({"l2i_checkpoint": key})
        self.interpreter = interpreter.to(resources.device).eval()

    def _train(self, interpreter: L2IInterpreter, resources: TrainingResources) -> dict:
        hp = self.hyperparameters
        device = resources.device
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        spectra = torch.cat([log1p_magnitude(stft(chunk.to(device))).cpu()
                             for chunk in resources.train_waveforms.split(32)])
        interpreter.dictionary.copy_(nmf_dictionary(spectra, hp["n_components"], resources.seed))
        interpreter.to(device).train()
        model = DomainModel(resources.classifier, DOMAINS["listenable"]).eval()
        optimizer = torch.optim.Adam(interpreter.parameters(), lr=hp["lr"])
        history = []
        for epoch in tqdm(range(hp["epochs"]), desc="train L2I", unit="epoch"):
            totals = {"reconstruction": 0.0, "fidelity": 0.0}
            for batch in torch.randperm(len(spectra), generator=generator).split(resources.profile["batch_size"]):
                features = spectra[batch].to(device)
                with torch.no_grad():
                    logits, representations = model.forward_with_representations(features)
                activations = interpreter.activations(representations)
                reconstruction = F.mse_loss(interpreter.reconstruction(activations), features)
                fidelity = F.kl_div(interpreter.theta(activations).log_softmax(1), logits.log_softmax(1),
                                    log_target=True, reduction="batchmean")
                loss = reconstruction + hp["lambda_fidelity"] * fidelity
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                totals["reconstruction"] += reconstruction.item() * len(batch)
                totals["fidelity"] += fidelity.item() * len(batch)
            history.append({"epoch": epoch + 1, **{k: v / len(spectra) for k, v in totals.items()}})
        interpreter.eval()
        return {"history": history}

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
