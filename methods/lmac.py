"""L-MAC: Listenable Maps for Audio Classifiers (Paissan et al., ICML 2024; BENCHMARK.md §4).

A decoder reads the classifier's block 6, 5, 4, 3 representations and outputs a
sigmoid mask on the STFT grid (first 425 of 431 frames); it is trained with the
classifier frozen so that the masked-in input keeps the prediction and the
masked-out input loses it, with an L1 penalty on the mask (paper Eq. 4).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from benchmark.checkpoints import CheckpointError, cached_training, content_key, load_state, read_state_dict
from benchmark.classifier import DomainModel
from benchmark.frontend import DOMAINS, apply_mask, log1p_magnitude, stft
from datasets.contamination import mix
from methods.base import Explainer, TrainingResources, register
from metrics.clean_spectrogram import binarised_spectrogram, clean_spectrogram_bce


class LMACDecoder(nn.Module):
    """SpeechBrain's ``CNN14PSI_stft`` layout with separate input and internal widths.

    Args:
        representation_channels: channels of classifier blocks 6, 5, 4, 3 (paper:
            2048, 1024, 512, 256).
        width: internal width ``dim`` (paper: 2048, ≈ 237 M parameters). With
            channels (dim, dim/2, dim/4, dim/8) the state dict is exactly
            ``CNN14PSI_stft(dim)``'s.

    ``forward(representations)`` → logits (B, 1, 425, 513) for a 431-frame input
    (apply a sigmoid for the mask).
    """

    def __init__(self, representation_channels: tuple[int, int, int, int], width: int):
        super().__init__()
        c6, c5, c4, c3 = representation_channels
        d = width
        self.convt1 = nn.ConvTranspose2d(c6, d, 3, (2, 4), 1)
        self.convt2 = nn.ConvTranspose2d(c5, d, 3, (2, 4), 1)
        self.convt3 = nn.ConvTranspose2d(d, d, (7, 4), (2, 4), 1)
        self.convt4 = nn.ConvTranspose2d(c4, d, (5, 4), (2, 4), 1)
        self.convt5 = nn.ConvTranspose2d(d, d // 2, (3, 5), (2, 2), 1)
        self.convt6 = nn.ConvTranspose2d(c3, d // 2, (3, 3), (2, 4), 1)
        self.convt7 = nn.ConvTranspose2d(d // 2, d // 4, (4, 3), (2, 2), (0, 5))
        self.convt8 = nn.ConvTranspose2d(d // 4, d // 8, (3, 4), (2, 2), (0, 2))
        self.convt9 = nn.ConvTranspose2d(d // 8, 1, (1, 5), (1, 4), 0)
        self.nonl = nn.ReLU(True)

    def forward(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h6, h5, h4, h3 = representations
        h = self.nonl(self.convt1(h6)) + self.nonl(self.convt2(h5))
        h = self.nonl(self.convt3(h)) + self.nonl(self.convt4(h4))
        h = self.nonl(self.convt5(h)) + self.nonl(self.convt6(h3))
        h = self.nonl(self.convt7(h))
        return self.convt9(self.convt8(h))


def lmac_loss(
    model: DomainModel,
    mask: torch.Tensor,
    features: torch.Tensor,
    predicted: torch.Tensor,
    lambda_in: float,
    lambda_out: float,
    lambda_l1: float,
    l1_batch_scaled: bool,
    l1_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The L-MAC objective (§4): λ_in·CE(f(M⊙X), ŷ) − λ_out·CE(f((1−M)⊙X), ŷ) + L1.

    Args:
        model: frozen classifier in the listenable domain.
        mask: (B, T_m, 513) in [0, 1]; ``features`` are cropped to its T_m frames.
        features: X = log1p|STFT| (B, T, 513).
        predicted: ŷ (B,), the classifier's prediction on X.
        l1_batch_scaled: True reproduces the reference, which sums the per-sample
            mean |M| over the batch (effective weight B·λ_1); False uses λ_1·mean|M|.
        l1_weights: (B,) per-sample factors of the L1 term (fine-tuning: 0 for guided samples).
    Returns:
        the scalar loss and its terms (floats) for logging.
    """
    masked_in, masked_out = apply_mask(features, mask)
    ce_in = F.cross_entropy(model(masked_in), predicted)
    ce_out = F.cross_entropy(model(masked_out), predicted)
    per_sample_l1 = mask.abs().flatten(1).mean(1)
    weighted = per_sample_l1 if l1_weights is None else per_sample_l1 * l1_weights
    l1 = weighted.sum() if l1_batch_scaled else weighted.mean()
    loss = lambda_in * ce_in - lambda_out * ce_out + lambda_l1 * l1
    return loss, {"ce_in": ce_in.item(), "ce_out": ce_out.item(), "mask_mean": per_sample_l1.mean().item()}


def noisy_batches(waveforms: torch.Tensor, noise: torch.Tensor | None, batch_size: int, generator: torch.Generator,
                  peak_normalisation: str = "max"):
    """Shuffled batches of training clips mixed at 0 dB with a random noise clip (§4).

    Without noise clips, another (shuffled) training clip serves as the noise.
    Yields (clean, noisy) pairs of (B, samples) waveforms, the noisy ones peak-normalised
    (``datasets.contamination.mix``).
    """
    pool = waveforms if noise is None else noise
    for batch in torch.randperm(len(waveforms), generator=generator).split(batch_size):
        picks = torch.randint(0, len(pool), (len(batch),), generator=generator)
        yield waveforms[batch], mix(waveforms[batch], pool[picks], 1.0, 1.0, peak_normalisation)


def guidance_terms(mask: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor, cth: float,
                   threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-tuning guidance (§4): per-sample BCE(M, O) against the binarised clean spectrogram,
    and which samples are guided (cosine similarity of X_clean and M⊙X_noisy ≥ ``cth``).

    Args:
        mask: (B, T_m, F); clean, noisy: log1p magnitudes (B, T, F), cropped to T_m frames here.
    Returns:
        bce (B,), guided (B,) in {0, 1} (no gradient).
    """
    clean, noisy = clean[:, : mask.shape[1]], noisy[:, : mask.shape[1]]
    similarity = F.cosine_similarity(clean.flatten(1), (mask * noisy).flatten(1), dim=1)
    return (clean_spectrogram_bce(mask, binarised_spectrogram(clean, threshold)),
            (similarity >= cth).float().detach())


@register("lmac")
class LMACExplainer(Explainer):
    """L-MAC mask (B, 425, 513) in [0, 1] from the classifier's representations.

    Keywords: ``lambda_in`` 4, ``lambda_out`` 0.2, ``l1_batch_scaled`` True (the
    reference sums the per-sample mean |M| over the batch: effective L1 weight
    B·λ_1, see §4), ``weight_decay`` 2e-6 (paper values), ``checkpoint`` (a trained
    decoder to load instead of training, see ``fit``); ``width``, ``epochs``,
    ``lr`` and ``lambda_l1`` default to the profile's (``lmac_*``): the paper profile
    uses the paper's 2048, 200, 2e-4 and 0.4. The CPU profile trains 30 epochs at lr
    1e-3 (the paper's 15,000 steps are out of reach) with the λ_1 that
    ``run_benchmark.py select-lmac-l1`` chose on the validation part (README, "L-MAC on
    the CPU profile").
    """

    domains = ("listenable",)
    returns_mask = True
    reads_representations = True

    def __init__(
        self,
        lambda_in: float = 4.0,
        lambda_out: float = 0.2,
        lambda_l1: float | None = None,
        l1_batch_scaled: bool = True,
        lr: float | None = None,
        weight_decay: float = 2e-6,
        width: int | None = None,
        epochs: int | None = None,
        checkpoint: str | None = None,
    ):
        super().__init__(
            lambda_in=lambda_in, lambda_out=lambda_out, lambda_l1=lambda_l1, l1_batch_scaled=l1_batch_scaled,
            lr=lr, weight_decay=weight_decay, width=width, epochs=epochs, checkpoint=checkpoint,
        )
        self.decoder: LMACDecoder | None = None

    def check(self) -> None:
        """Raise ``CheckpointError`` unless ``checkpoint`` (if set) is a readable L-MAC decoder state dict."""
        if self.hyperparameters["checkpoint"]:
            self._checkpoint_state()

    def _checkpoint_state(self) -> dict[str, torch.Tensor]:
        path = self.hyperparameters["checkpoint"]
        state = read_state_dict(path, "--lmac-checkpoint")
        if "convt1.weight" not in state:
            raise CheckpointError(f"--lmac-checkpoint {path}: not an L-MAC decoder state dict (no convt1.weight); "
                                  "pass SpeechBrain's psi_model.ckpt of CNN14PSI_stft or an lmac-*.pt of the cache")
        return state

    def fit(self, resources: TrainingResources) -> None:
        """Train the decoder (cached), or load ``checkpoint``: a decoder state dict such as
        SpeechBrain's ``psi_model.ckpt`` of ``CNN14PSI_stft(dim=2048)`` (width read from it).

        Raises:
            CheckpointError: unreadable or unsafe checkpoint. ValueError: the checkpoint
            does not fit the classifier's representations.
        """
        if self.hyperparameters["checkpoint"]:
            path = Path(self.hyperparameters["checkpoint"])
            decoder = LMACDecoder(resources.classifier.embedding_model.representation_channels,
                                  self._checkpoint_state()["convt1.weight"].shape[1])
            load_state(decoder, path, "--lmac-checkpoint")
            self.checkpoint_key = content_key([path], resources.cache_dir, format="lmac decoder")
            self.decoder = decoder.to(resources.device).eval()
            return
        hp = dict(self.hyperparameters)
        for key in ("width", "epochs", "lr", "lambda_l1"):
            if hp[key] is None:
                hp[key] = resources.profile[f"lmac_{key}"]
        self.hyperparameters = hp
        torch.manual_seed(resources.seed)  # the same initial decoder whatever ran before
        decoder = LMACDecoder(resources.classifier.embedding_model.representation_channels, hp["width"])
        config = {
            "kind": "lmac", "classifier": resources.classifier_key, "training_data": resources.data_key,
            "batch_size": resources.profile["batch_size"], "seed": resources.seed, **hp,
        }

        def train(module: LMACDecoder) -> dict:
            return self._train(module, resources, hp["epochs"])

        self.checkpoint_key = cached_training(decoder, "lmac", config, resources.cache_dir, train)
        resources.log.append({"lmac_checkpoint": self.checkpoint_key})
        self.decoder = decoder.to(resources.device).eval()

    def _train(self, decoder: LMACDecoder, resources: TrainingResources, epochs: int, stage: str = "train L-MAC",
               guidance: float = 0.0) -> dict:
        """Train ``decoder`` in place for ``epochs``; with ``guidance`` > 0, the fine-tuning
        objective: + λ_g·mean(BCE(M, O)·guided), and no L1 term for guided samples (§4)."""
        hp = self.hyperparameters
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        device = resources.device
        decoder.to(device).train()
        model = DomainModel(resources.classifier, DOMAINS["listenable"]).eval()
        optimizer = torch.optim.Adam(decoder.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        history = []
        progress = tqdm(range(epochs), desc=stage, unit="epoch")
        for epoch in progress:
            terms = []
            for clean, noisy in noisy_batches(resources.train_waveforms, resources.noise_waveforms,
                                              resources.profile["batch_size"], generator, resources.peak_normalisation):
                features = log1p_magnitude(stft(noisy.to(device)))
                with torch.no_grad():
                    logits, representations = model.forward_with_representations(features)
                mask = torch.sigmoid(decoder(representations)).squeeze(1)
                bce, guided = None, None
                if guidance:
                    bce, guided = guidance_terms(mask, log1p_magnitude(stft(clean.to(device))), features,
                                                 hp["cth"], hp["binarisation"])
                loss, logged = lmac_loss(model, mask, features, logits.argmax(1), hp["lambda_in"],
                                         hp["lambda_out"], hp["lambda_l1"], hp["l1_batch_scaled"],
                                         None if guided is None else 1 - guided)
                if guidance:
                    loss = loss + guidance * (bce * guided).mean()
                    logged.update(guided=guided.mean().item(), bce=bce.mean().item())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                terms.append({"loss": loss.item(), **logged})
            summary = {k: sum(t[k] for t in terms) / len(terms) for k in terms[0]}
            history.append({"epoch": epoch + 1, **summary})
            progress.set_postfix(loss=f"{summary['loss']:.3f}", mask_mean=f"{summary['mask_mean']:.3f}")
        decoder.eval()
        return {"history": history}

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor,
                  representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The mask (B, 425, 513) from the classifier's block representations on ``features``
        (the caller's ``representations``, else a pass of its own); ``target`` is not used."""
        if self.decoder is None:
            raise RuntimeError("L-MAC is not trained: call fit() (the harness does) or load a checkpoint")
        with torch.no_grad():
            if representations is None:
                representations = model.forward_with_representations(features).representations
            return torch.sigmoid(self.decoder(representations)).squeeze(1)


@register("lmac-ft")
class LMACFineTunedExplainer(LMACExplainer):
    """L-MAC FT (§4): the trained L-MAC decoder fine-tuned towards the binarised clean spectrogram.

    Keywords: ``guidance`` λ_g (4, the paper's table rows; 16 in its user study),
    ``cth`` cosine-similarity threshold of guided samples (0.6), ``binarisation``
    threshold of O = 1[X_clean ≥ 0.35·max X_clean] (0.35), ``ft_epochs`` (default: the
    profile's ``lmac_ft_epochs``); the other keywords are L-MAC's, for the decoder it
    starts from (the same cached decoder as the ``lmac`` row).
    """

    def __init__(self, guidance: float = 4.0, cth: float = 0.6, binarisation: float = 0.35,
                 ft_epochs: int | None = None, **lmac_keywords):
        super().__init__(**lmac_keywords)
        self.hyperparameters.update(guidance=guidance, cth=cth, binarisation=binarisation, ft_epochs=ft_epochs)

    def fit(self, resources: TrainingResources) -> None:
        tuning = {k: self.hyperparameters.pop(k) for k in ("guidance", "cth", "binarisation", "ft_epochs")}
        super().fit(resources)  # the L-MAC decoder it starts from, trained or cached
        tuning["ft_epochs"] = tuning["ft_epochs"] or resources.profile["lmac_ft_epochs"]
        self.hyperparameters.update(tuning)
        decoder = copy.deepcopy(self.decoder)
        config = {"kind": "lmac-ft", "base": self.checkpoint_key, "classifier": resources.classifier_key,
                  "training_data": resources.data_key, "batch_size": resources.profile["batch_size"],
                  "seed": resources.seed, **tuning, "lr": self.hyperparameters["lr"]}

        def train(module: LMACDecoder) -> dict:
            return self._train(module, resources, tuning["ft_epochs"], "fine-tune L-MAC", tuning["guidance"])

        key = cached_training(decoder, "lmac-ft", config, resources.cache_dir, train)
        resources.log.append({"lmac_ft_checkpoint": key})
        self.decoder = decoder.to(resources.device).eval()
