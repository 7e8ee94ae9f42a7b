"""PIQ: Posthoc Interpretation via Quantization (Paissan, Subakan, Ravanelli et al., arXiv 2303.12659),
after SpeechBrain's recipe ``recipes/ESC50/interpret/train_piq.py`` with ``hparams/piq.yaml``.

An interpreter reads the classifier's deepest representation (the recipe's ``hcat``; CNN14: block 6),
quantises it with a codebook partitioned among the classes (the keys of the predicted class only) and
decodes the keys into a sigmoid mask on the domain's grid (``methods.piq_model``). The recipe's
objective (``use_mask_output``, ``use_vq``): BCE of the mask against the binarised input spectrogram
1[X ≥ 0.35 · max X] (the recipe's >: they differ only at a tie), + the codebook term ‖z_q − sg(h_e)‖²
+ the commitment term ‖h_e − sg(z_q)‖² (weight 1), with the classifier frozen; its interpretation is
mask ⊙ X. The recipe trains on the clean clips (no noise augmentation); ``mixtures=True`` mixes them with
noise at 0 dB as L-MAC does. One interpreter is trained per domain of the run, the last epoch kept (the
recipe's learning-rate halving from epoch 100 and its checkpoint choice on validation metrics are left out).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from classifiers.base import DomainModel
from foundation import distributed, precision
from foundation.checkpoints import cached_training
from foundation.frontend import DOMAINS, apply_mask, stft
from foundation.precision import autocast
from methods.base import Explainer, TrainingResources
from methods.lmac import noisy_batches
from methods.piq_model import new_interpreter
from methods.registry import register
from metrics.clean_spectrogram import binarised_spectrogram


def piq_loss(mask_logits: torch.Tensor, features: torch.Tensor, encoded: torch.Tensor, quantised: torch.Tensor,
             threshold: float = 0.35, reconstruction_weight: float = 1.0, beta: float = 1.0,
             model: DomainModel | None = None, predicted: torch.Tensor | None = None,
             lambda_fidelity: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The recipe's objective: w_rec·BCE(σ(logits), 1[X ≥ θ·max X]) + ‖z_q − sg(h_e)‖²
    + β·‖h_e − sg(z_q)‖² (means), + λ_fid·CE(f(M⊙X), ŷ) when ``lambda_fidelity`` > 0 (the recipe's
    ``loss_fid``, 0 there).

    Args:
        mask_logits: (B, T_m, F) logits of the mask M = σ(logits); ``features`` are cropped to T_m frames.
        features: X of the domain (B, T, F), log1p magnitudes (STFT or mel).
        encoded: h_e, the representation the quantiser reads (B, C, T', F').
        quantised: z_q, its codebook keys (gradient to the codebook).
        threshold: θ of the binarised target (the recipe's ``mask_th`` 0.35, per-sample max).
        model, predicted: the frozen classifier seen from the domain and its prediction ŷ (B,), for the
            fidelity term only.
    Returns:
        the scalar loss and its terms (detached 0-d tensors: no host sync per step).
    """
    cropped = features[:, : mask_logits.shape[1]]
    target = binarised_spectrogram(cropped, threshold).float()
    reconstruction = F.binary_cross_entropy_with_logits(mask_logits.float(), target)
    codebook = F.mse_loss(quantised.float(), encoded.detach().float())
    commitment = F.mse_loss(encoded.float(), quantised.detach().float())
    loss = reconstruction_weight * reconstruction + codebook + beta * commitment
    terms = {"reconstruction": reconstruction.detach(), "codebook": codebook.detach(),
             "commitment": commitment.detach()}
    if lambda_fidelity:
        masked_in, _ = apply_mask(features, torch.sigmoid(mask_logits))
        fidelity = F.cross_entropy(model(masked_in).float(), predicted)
        loss = loss + lambda_fidelity * fidelity
        terms["fidelity"] = fidelity.detach()
    return loss, terms


@register("piq")
class PIQExplainer(Explainer):
    """PIQ mask (B, T, F) in [0, 1] for the explained class, one interpreter per domain: F = 513 in the
    listenable domain, the classifier's feature bins in the mel domain (CNN14: 80), all T frames.

    The recipe's ``interpret_computation_steps`` (``use_mask_output: True``) gives xhat = σ(ψ(h, ŷ)) and
    the interpretation X_int = xhat ⊙ X on the STFT grid: xhat is a mask in [0, 1] already, and is the
    mask here. The quantiser uses the keys of the explained class (``target``; the recipe's predicted
    class, the same for the benchmark's targets), so the mask depends on it. In the mel domain the
    same objective binarises the log1p mel features; no waveform domain (its samples are signed).

    Keywords (the recipe's values): ``codebook_size`` K 1024, ``beta`` commitment weight 1,
    ``reconstruction_weight`` 1, ``threshold`` θ of the binarised target 0.35, ``weight_decay`` 2e-6,
    ``lambda_fidelity`` 0 (the recipe's ``loss_fid``: > 0 adds λ·CE(f(M⊙X), ŷ)), ``mixtures`` False
    (the recipe trains on clean clips; True: 0 dB mixtures as L-MAC); ``width``, ``epochs`` and ``lr``
    default to the profile's (``piq_*``): the paper profile has the recipe's 256, 200 and 2e-4.
    """

    domains = ("listenable", "mel")
    returns_mask = True
    reads_representations = True
    requires = ("representations",)
    VALUE_RANGES = {"threshold": (0.0, 1.0)}

    def __init__(self, codebook_size: int = 1024, beta: float = 1.0, reconstruction_weight: float = 1.0,
                 threshold: float = 0.35, lambda_fidelity: float = 0.0, mixtures: bool = False,
                 lr: float | None = None, weight_decay: float = 2e-6, width: int | None = None,
                 epochs: int | None = None):
        super().__init__(codebook_size=codebook_size, beta=beta, reconstruction_weight=reconstruction_weight,
                         threshold=threshold, lambda_fidelity=lambda_fidelity, mixtures=mixtures, lr=lr,
                         weight_decay=weight_decay, width=width, epochs=epochs)
        self.interpreters: dict[str, nn.Module] = {}
        self.checkpoint_keys: dict[str, str] = {}

    def fit(self, resources: TrainingResources) -> None:
        """Train (or load from the shipped models or the cache) one interpreter per domain of the run.

        Raises:
            ValueError: the codebook has fewer keys than the classifier has classes.
        """
        hp = dict(self.hyperparameters)
        hp.update({key: resources.profile[f"piq_{key}"] for key in ("width", "epochs", "lr") if hp[key] is None})
        self.hyperparameters = hp
        for domain in [d for d in resources.domains if d in self.domains]:
            torch.manual_seed(resources.seed)  # the same initial interpreter whatever ran before
            interpreter = new_interpreter(resources.classifier, domain, hp["width"], hp["codebook_size"])
            kind = "piq" if domain == "listenable" else f"piq-{domain}"
            config = {"kind": kind, "classifier": resources.classifier_key, "training_data": resources.data_key,
                      "batch_size": resources.profile["batch_size"], "seed": resources.seed, **hp,
                      **precision.key_part(resources.precision)}

            def train(module: nn.Module, domain: str = domain) -> dict:
                return self._train(module, resources, domain)

            self.checkpoint_keys[domain] = cached_training(interpreter, kind, config, resources.cache_dir, train,
                                                           resources.reference_dir, resources.models,
                                                           resources.expected_models)
            resources.log.append({f"{kind}_checkpoint": self.checkpoint_keys[domain]})
            self.interpreters[domain] = interpreter.to(resources.device).eval()

    def _train(self, interpreter: nn.Module, resources: TrainingResources, domain: str) -> dict:
        """Train ``interpreter`` in place (Adam, the classifier frozen, its prediction as the class);
        returns the per-epoch means of the loss and its terms."""
        hp = self.hyperparameters
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        device = resources.device
        interpreter.to(device).train()
        model = DomainModel(resources.classifier, DOMAINS[domain]).eval()
        optimizer = torch.optim.Adam(interpreter.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        waveforms = resources.train_waveforms.to(device)  # once: every batch is cut (and mixed) on the device
        noise = None if resources.noise_waveforms is None else resources.noise_waveforms.to(device)
        current = distributed.ranks()
        network = distributed.parallel(interpreter, current)
        history = []
        progress = tqdm(range(hp["epochs"]), desc=f"train PIQ ({domain})", unit="epoch")
        for epoch in progress:
            terms = []
            batches = distributed.epoch_batches(len(waveforms), resources.profile["batch_size"], generator, epoch,
                                                resources.seed, current)
            if hp["mixtures"]:
                inputs = (noisy for _, noisy in noisy_batches(waveforms, noise, batches, generator,
                                                               resources.peak_normalisation))
            else:
                inputs = (waveforms[batch.to(device)] for batch in batches)
            for waves in inputs:
                with autocast(device, resources.precision):
                    spec = stft(waves)
                    features, heard = model.features(waves, spec), model.hearing(spec, waves.shape[1])
                    with torch.no_grad():
                        logits, representations = heard.forward_with_representations(features)
                    predicted = logits.argmax(1)
                    mask_logits, encoded, quantised = network(representations[0], predicted, features.shape[1:])
                    loss, logged = piq_loss(mask_logits.squeeze(1), features, encoded, quantised, hp["threshold"],
                                            hp["reconstruction_weight"], hp["beta"], heard, predicted,
                                            hp["lambda_fidelity"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                terms.append({"loss": loss.detach(), **logged})
            # one host sync per epoch, not per step
            summary = dict(zip(terms[0], (torch.stack([torch.stack([t[k] for t in terms]).double().mean()
                                                       for k in terms[0]]).tolist())))
            history.append({"epoch": epoch + 1, **summary})
            progress.set_postfix(loss=f"{summary['loss']:.3f}", bce=f"{summary['reconstruction']:.3f}")
        interpreter.eval()
        return {"history": history}

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor | None,
                  representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The mask σ(ψ(h, target)) (B, T, F) of the interpreter of ``model``'s domain, from the classifier's
        deepest representation on ``features`` (the caller's, else a pass of its own); ``target`` None:
        the classifier's prediction.

        Raises:
            RuntimeError: no interpreter was fitted for the domain.
        """
        interpreter = self.interpreters.get(model.domain.name)
        if interpreter is None:
            raise RuntimeError(f"PIQ has no {model.domain.name} interpreter: call fit() with that domain among "
                               "resources.domains (the harness does)")
        with torch.no_grad():
            if representations is None or target is None:
                passed = model.forward_with_representations(features)
                representations = passed.representations if representations is None else representations
                target = passed.logits.argmax(1) if target is None else target
            mask_logits, _, _ = interpreter(representations[0], target, features.shape[1:])
            return torch.sigmoid(mask_logits).squeeze(1)
