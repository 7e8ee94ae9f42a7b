"""L-MAC: Listenable Maps for Audio Classifiers (Paissan et al., ICML 2024, §3).

A decoder reads the classifier's representations and outputs a sigmoid mask on the grid of
its domain (``methods.lmac_decoders``). For CNN14 these are the block 6, 5, 4, 3 outputs and
SpeechBrain's decoders, over the first 425 of 431 frames: the STFT grid (513 bins,
``CNN14PSI_stft``) in the listenable domain, the mel grid (80 bands, ``CNN14PSI``) in the mel
domain; for any other classifier a ``GridDecoder`` built from the shapes of its representations,
over the whole grid. It is trained with the classifier
frozen so that the masked-in input keeps the prediction and the masked-out input
loses it, with an L1 penalty on the mask (paper Eq. 4). One decoder is trained per
domain of the run.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from classifiers.base import DomainModel
from datasets.contamination import mix
from foundation import distributed, precision
from foundation.checkpoints import CheckpointError, cached_training, content_key, load_state, read_state_dict
from foundation.frontend import DOMAINS, apply_mask, stft
from foundation.precision import autocast
from methods.base import Explainer, TrainingResources
from methods.lmac_decoders import new_decoder
from methods.registry import register
from metrics.clean_spectrogram import binarised_spectrogram, clean_spectrogram_bce


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
        model: frozen classifier seen from the decoder's domain.
        mask: (B, T_m, F) in [0, 1]; ``features`` are cropped to its T_m frames.
        features: X of the domain (B, T, F): log1p|STFT| (F = 513) or log1p mel (F = 80).
        predicted: ŷ (B,), the classifier's prediction on X.
        l1_batch_scaled: True reproduces the reference, which sums the per-sample
            mean |M| over the batch (effective weight B·λ_1); False uses λ_1·mean|M|.
        l1_weights: (B,) per-sample factors of the L1 term (fine-tuning: 0 for guided samples).
    Returns:
        the scalar loss and its terms for logging (detached 0-d tensors: no host sync per step).
    """
    masked_in, masked_out = apply_mask(features, mask)
    ce_in = F.cross_entropy(model(masked_in), predicted)
    ce_out = F.cross_entropy(model(masked_out), predicted)
    per_sample_l1 = mask.abs().flatten(1).mean(1)
    weighted = per_sample_l1 if l1_weights is None else per_sample_l1 * l1_weights
    l1 = weighted.sum() if l1_batch_scaled else weighted.mean()
    loss = lambda_in * ce_in - lambda_out * ce_out + lambda_l1 * l1
    return loss, {"ce_in": ce_in.detach(), "ce_out": ce_out.detach(), "mask_mean": per_sample_l1.mean().detach()}


def noisy_batches(waveforms: torch.Tensor, noise: torch.Tensor | None, batches: list[torch.Tensor],
                  generator: torch.Generator, peak_normalisation: str = "max"):
    """Training clips mixed at 0 dB with a random noise clip (§4), batch by batch.

    ``batches``: index tensors into ``waveforms`` (``distributed.epoch_batches``: shuffled, this
    process's share). Without noise clips, another training clip serves as the noise.
    Yields (clean, noisy) pairs of (B, samples) waveforms on the device of ``waveforms``
    (pass them there once: mixing then runs on it), the noisy ones peak-normalised
    (``datasets.contamination.mix``). The noise draws come from the CPU ``generator``, so they
    are the same on every device.
    """
    pool = waveforms if noise is None else noise
    for batch in batches:
        picks = torch.randint(0, len(pool), (len(batch),), generator=generator)
        batch, picks = batch.to(waveforms.device), picks.to(pool.device)
        yield waveforms[batch], mix(waveforms[batch], pool[picks], 1.0, 1.0, peak_normalisation)


def guidance_terms(mask: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor, cth: float,
                   threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-tuning guidance (§4): per-sample BCE(M, O) against the binarised clean spectrogram,
    and which samples are guided (cosine similarity of X_clean and M⊙X_noisy ≥ ``cth``).

    Args:
        mask: (B, T_m, F); clean, noisy: features X of the mask's domain (B, T, F), cropped to
            T_m frames here.
    Returns:
        bce (B,), guided (B,) in {0, 1} (no gradient).
    """
    clean, noisy = clean[:, : mask.shape[1]], noisy[:, : mask.shape[1]]
    similarity = F.cosine_similarity(clean.flatten(1), (mask * noisy).flatten(1), dim=1)
    return (clean_spectrogram_bce(mask, binarised_spectrogram(clean, threshold)),
            (similarity >= cth).float().detach())


@register("lmac")
class LMACExplainer(Explainer):
    """L-MAC mask (B, T_m, F) in [0, 1] from the classifier's representations, one decoder per
    domain: F = 513 in the listenable domain, the classifier's feature bins in the mel domain
    (CNN14: 80); T_m = 425 of 431 frames with SpeechBrain's CNN14 decoders, else T.

    Keywords: ``lambda_in`` 4, ``lambda_out`` 0.2, ``l1_batch_scaled`` True (the
    reference sums the per-sample mean |M| over the batch: effective L1 weight
    B·λ_1, see §4), ``weight_decay`` 2e-6 (paper values), ``checkpoint`` (a trained
    listenable decoder to load instead of training: SpeechBrain's ``CNN14PSI_stft``),
    ``mel_checkpoint`` (the same for the mel domain: ``CNN14PSI``); ``width``,
    ``epochs``, ``lr`` and ``lambda_l1`` default to the profile's (``lmac_*``): the
    paper profile uses the paper's 2048, 200, 2e-4 and 0.4. The CPU profile trains 30
    epochs at lr 1e-3 (the paper's 15,000 steps are out of reach) with the λ_1 that
    ``run_benchmark.py select-lmac-l1`` chose on the validation part (docs/studies.md, "L-MAC
    on the CPU profile"); the mel decoder uses the same settings.
    """

    domains = ("listenable", "mel", "waveform")
    returns_mask = True
    reads_representations = True
    requires = ("representations",)
    CHECKPOINT_KEYWORDS = {"listenable": ("checkpoint", "--lmac-checkpoint", "CNN14PSI_stft"),
                           "mel": ("mel_checkpoint", "--lmac-mel-checkpoint", "CNN14PSI")}

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
        mel_checkpoint: str | None = None,
    ):
        super().__init__(
            lambda_in=lambda_in, lambda_out=lambda_out, lambda_l1=lambda_l1, l1_batch_scaled=l1_batch_scaled,
            lr=lr, weight_decay=weight_decay, width=width, epochs=epochs, checkpoint=checkpoint,
            mel_checkpoint=mel_checkpoint,
        )
        self.decoders: dict[str, nn.Module] = {}
        self.checkpoint_keys: dict[str, str] = {}

    def check(self) -> None:
        """Raise ``CheckpointError`` unless each given checkpoint is a readable L-MAC decoder
        state dict of its domain's layout."""
        for domain, (keyword, _, _) in self.CHECKPOINT_KEYWORDS.items():
            if self.hyperparameters[keyword]:
                self._checkpoint_state(domain)

    def _checkpoint_state(self, domain: str) -> dict[str, torch.Tensor]:
        keyword, flag, layout = self.CHECKPOINT_KEYWORDS[domain]
        path = self.hyperparameters[keyword]
        state = read_state_dict(path, flag)
        if "convt1.weight" not in state:
            raise CheckpointError(f"{flag} {path}: not an L-MAC decoder state dict (no convt1.weight); "
                                  f"pass SpeechBrain's psi_model.ckpt of {layout} or an lmac-*.pt of the cache")
        if ("convt9.weight" in state) != (domain == "listenable"):
            other = next(f for d, (_, f, _) in self.CHECKPOINT_KEYWORDS.items() if d != domain)
            raise CheckpointError(f"{flag} {path}: a decoder of the other domain's layout (the {domain} domain "
                                  f"needs {layout}); pass it with {other}")
        return state

    def fit(self, resources: TrainingResources) -> None:
        """For each domain of the run this method explains: load the given checkpoint
        (``checkpoint``/``mel_checkpoint``: a decoder state dict such as SpeechBrain's
        ``psi_model.ckpt``, width read from it), else train the decoder (cached).

        Raises:
            CheckpointError: unreadable or unsafe checkpoint, or one of the other domain's
            layout. ValueError: the checkpoint does not fit the classifier's representations.
        """
        hp = dict(self.hyperparameters)
        domains = [d for d in resources.domains if d in self.domains]
        if any(not hp.get(self.CHECKPOINT_KEYWORDS.get(d, ("",))[0]) for d in domains):  # a decoder to train
            hp.update({key: resources.profile[f"lmac_{key}"] for key in ("width", "epochs", "lr", "lambda_l1")
                       if hp[key] is None})
        self.hyperparameters = hp
        for domain in domains:
            keyword, flag, _ = self.CHECKPOINT_KEYWORDS.get(domain, ("", "", ""))  # none for the waveform
            if hp.get(keyword):
                path = Path(hp[keyword])
                decoder = new_decoder(resources.classifier, domain,
                                      self._checkpoint_state(domain)["convt1.weight"].shape[1])
                load_state(decoder, path, flag)
                self.checkpoint_keys[domain] = content_key([path], resources.cache_dir, format="lmac decoder")
            else:
                torch.manual_seed(resources.seed)  # the same initial decoder whatever ran before
                decoder = new_decoder(resources.classifier, domain, hp["width"])
                kind = "lmac" if domain == "listenable" else f"lmac-{domain}"
                trained = {k: v for k, v in hp.items() if k not in ("checkpoint", "mel_checkpoint")}
                config = {"kind": kind, "classifier": resources.classifier_key, "training_data": resources.data_key,
                          "batch_size": resources.profile["batch_size"], "seed": resources.seed, **trained,
                          "checkpoint": None,  # a trained decoder: no given checkpoint
                          **precision.key_part(resources.precision)}

                def train(module: nn.Module) -> dict:
                    return self._train(module, resources, hp["epochs"], domain, f"train L-MAC ({domain})")

                self.checkpoint_keys[domain] = cached_training(decoder, kind, config, resources.cache_dir, train,
                                                               resources.reference_dir, resources.models,
                                                               resources.expected_models)
                resources.log.append({f"{kind}_checkpoint": self.checkpoint_keys[domain]})
            self.decoders[domain] = decoder.to(resources.device).eval()

    def _train(self, decoder: nn.Module, resources: TrainingResources, epochs: int, domain: str, stage: str,
               guidance: float = 0.0) -> dict:
        """Train ``decoder`` in place for ``epochs`` in its domain; with ``guidance`` > 0, the
        fine-tuning objective: + λ_g·mean(BCE(M, O)·guided), and no L1 term for guided samples (§4)."""
        hp = self.hyperparameters
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        device = resources.device
        decoder.to(device).train()
        model = DomainModel(resources.classifier, DOMAINS[domain]).eval()
        optimizer = torch.optim.Adam(decoder.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        history = []
        waveforms = resources.train_waveforms.to(device)  # once: every batch is mixed on the device
        noise = None if resources.noise_waveforms is None else resources.noise_waveforms.to(device)
        current = distributed.ranks()
        network = distributed.parallel(decoder, current)
        progress = tqdm(range(epochs), desc=stage, unit="epoch")
        for epoch in progress:
            terms = []
            batches = distributed.epoch_batches(len(waveforms), resources.profile["batch_size"], generator, epoch,
                                                resources.seed, current)
            for clean, noisy in noisy_batches(waveforms, noise, batches, generator, resources.peak_normalisation):
                with autocast(device, resources.precision):
                    spec = stft(noisy)
                    features, heard = model.features(noisy, spec), model.hearing(spec, noisy.shape[1])
                    with torch.no_grad():
                        logits, representations = heard.forward_with_representations(features)
                    mask = torch.sigmoid(network(representations)).squeeze(1)
                    bce, guided = None, None
                    if guidance:
                        bce, guided = guidance_terms(mask, model.features(clean), features,
                                                     hp["cth"], hp["binarisation"])
                    loss, logged = lmac_loss(heard, mask, features, logits.argmax(1), hp["lambda_in"],
                                             hp["lambda_out"], hp["lambda_l1"], hp["l1_batch_scaled"],
                                             None if guided is None else 1 - guided)
                    if guidance:
                        loss = loss + guidance * (bce * guided).mean()
                        logged.update(guided=guided.mean().detach(), bce=bce.mean().detach())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                terms.append({"loss": loss.detach(), **logged})
            # one host sync per epoch, not per step
            summary = {k: v / len(terms) for k, v in zip(terms[0], torch.stack(
                [torch.stack([t[k] for t in terms]).double().sum() for k in terms[0]]).tolist())}
            history.append({"epoch": epoch + 1, **summary})
            progress.set_postfix(loss=f"{summary['loss']:.3f}", mask_mean=f"{summary['mask_mean']:.3f}")
        decoder.eval()
        return {"history": history}

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor,
                  representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The mask (B, T_m, F) of the decoder of ``model``'s domain, from the classifier's
        representations on ``features`` (the caller's, else a pass of its own); ``target`` is not used.

        Raises:
            RuntimeError: no decoder was fitted for the domain.
        """
        decoder = self.decoders.get(model.domain.name)
        if decoder is None:
            raise RuntimeError(f"L-MAC has no {model.domain.name} decoder: call fit() with that domain among "
                               "resources.domains (the harness does)")
        with torch.no_grad():
            if representations is None:
                representations = model.forward_with_representations(features).representations
            return torch.sigmoid(decoder(representations)).squeeze(1)


@register("lmac-ft")
class LMACFineTunedExplainer(LMACExplainer):
    """L-MAC FT (§4): the trained L-MAC decoder fine-tuned towards the binarised clean spectrogram
    of its domain (log1p magnitude in the listenable domain, log1p mel in the mel domain).

    Keywords: ``guidance`` λ_g (4, the paper's table rows; 16 in its user study),
    ``cth`` cosine-similarity threshold of guided samples (0.6), ``binarisation``
    threshold of O = 1[X_clean ≥ 0.35·max X_clean] (0.35), ``ft_epochs`` (default: the
    profile's ``lmac_ft_epochs``); the other keywords are L-MAC's, for the decoders it
    starts from (the same cached decoders as the ``lmac`` row).
    """

    VALUE_RANGES = {"cth": (-1.0, 1.0), "binarisation": (0.0, 1.0)}
    domains = ("listenable", "mel")  # its target binarises magnitudes: no waveform samples

    def __init__(self, guidance: float = 4.0, cth: float = 0.6, binarisation: float = 0.35,
                 ft_epochs: int | None = None, **lmac_keywords):
        super().__init__(**lmac_keywords)
        self.hyperparameters.update(guidance=guidance, cth=cth, binarisation=binarisation, ft_epochs=ft_epochs)

    def fit(self, resources: TrainingResources) -> None:
        tuning = {k: self.hyperparameters.pop(k) for k in ("guidance", "cth", "binarisation", "ft_epochs")}
        super().fit(resources)  # the L-MAC decoders it starts from, trained or cached
        tuning["ft_epochs"] = tuning["ft_epochs"] or resources.profile["lmac_ft_epochs"]
        self.hyperparameters.update(tuning)
        for domain, base in self.decoders.items():
            decoder = copy.deepcopy(base)
            kind = "lmac-ft" if domain == "listenable" else f"lmac-ft-{domain}"
            config = {"kind": kind, "base": self.checkpoint_keys[domain], "classifier": resources.classifier_key,
                      "training_data": resources.data_key, "batch_size": resources.profile["batch_size"],
                      "seed": resources.seed, **tuning, "lr": self.hyperparameters["lr"],
                      **precision.key_part(resources.precision)}

            def train(module: nn.Module) -> dict:
                return self._train(module, resources, tuning["ft_epochs"], domain, f"fine-tune L-MAC ({domain})",
                                   tuning["guidance"])

            key = cached_training(decoder, kind, config, resources.cache_dir, train, resources.reference_dir,
                                  resources.models, resources.expected_models)
            resources.log.append({f"{kind}_checkpoint": key})
            self.decoders[domain] = decoder.to(resources.device).eval()
