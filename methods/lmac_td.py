"""LMAC-TD: time-domain listenable maps (Mancini, Paissan, Ravanelli, Subakan, ICASSP 2025, arXiv 2409.08655).

A learned Conv1d encoder (kernel 16, stride 8, 256 channels) turns the waveform x into a latent
h = enc(x) (B, 256, L); a decoder of the classifier's representations (``RepresentationDecoder``,
SpeechBrain's ``CNN14PSI_encoderdecoder`` layout for CNN14) gives d (B, 256, L); a SepFormer-style
dual-path masker reads (1 − α)·h + α·d (``alpha_mix`` α) and outputs a sigmoid mask M (B, 256, L) in
the latent space. The explanation is the waveform x_in = dec(M ⊙ h) and its complement
x_out = dec((1 − M) ⊙ h), with a learned ConvTranspose1d decoder (paper §2). The masker, encoder and
decoder are SpeechBrain's modules (``speechbrain.lobes.models.dual_path``).

Trained with the classifier frozen (paper Eq. 2; SpeechBrain recipe ``train_lmactd.py``):
λ_in·CE(f(x_in), ŷ) − λ_out·CE(f(x_out), ŷ) + λ_1·mean|log1p|STFT(x_in)|| + λ_rec·SI-SNR(x_in + x_out, x),
with the recipe's weights 5, 0.2, 6 and 0 and f the classifier on its own features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.dual_path import Decoder, Dual_Path_Model, Encoder, SBTransformerBlock
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper
from torch import nn
from tqdm import tqdm

from classifiers.base import Classifier, DomainModel
from datasets.audio import CLIP_SAMPLES
from foundation import precision
from foundation.checkpoints import cached_training
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from foundation.precision import autocast
from methods.base import Explainer, TrainingResources
from methods.lmac import noisy_batches
from methods.lmac_decoders import GridDecoder
from methods.registry import register

KERNEL, STRIDE = 16, 8
"""The encoder's and decoder's kernel and stride in samples (the recipe's ``kernel_size`` 16, stride 8)."""


class RepresentationDecoder(nn.Module):
    """SpeechBrain's ``CNN14PSI_encoderdecoder`` layout with separate input and internal widths: CNN14's
    block 6, 5, 4, 3 outputs → (B, 1, T', 256), T' ≥ the latent's L frames for a 5 s clip (the recipe crops).

    Args:
        channels: channels of blocks 6, 5, 4, 3 (paper: 2048, 1024, 512, 256).
        width: internal width ``dim`` (the recipe's 2048). With channels (dim, dim/2, dim/4, dim/8) the
            layers are exactly the recipe's.
    """

    def __init__(self, channels: tuple[int, int, int, int], width: int):
        super().__init__()
        c6, c5, c4, c3 = channels
        d = width
        layers = [(c6, d // 4, 7, (3, 2), 1), (c5, d // 4, 7, (3, 2), 1), (d // 4, d // 4, (12, 11), (3, 2), 1),
                  (c4, d // 4, 7, (5, 4), 1), (d // 4, d // 8, 7, 2, 1), (c3, d // 8, (7, 11), (5, 4), (2, 1)),
                  (d // 8, d // 8, (4, 3), 2, (0, 5)), (d // 8, d // 16, (10, 7), (3, 1), (4, 2)),
                  (d // 16, 1, (8, 10), (7, 3), 0)]
        for i, (inputs, outputs, kernel, stride, padding) in enumerate(layers, start=1):
            self.add_module(f"convt{i}", nn.ConvTranspose2d(inputs, outputs, kernel, stride, padding))

    def forward(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h6, h5, h4, h3 = representations
        h = F.relu(self.convt1(h6)) + F.relu(self.convt2(h5))
        h = F.relu(self.convt3(h)) + F.relu(self.convt4(h4))
        h = F.relu(self.convt5(h)) + F.relu(self.convt6(h3))
        return self.convt9(self.convt8(F.relu(self.convt7(h))))


def latent_frames(samples: int) -> int:
    """L, the encoder's frames for ``samples`` samples: ⌊(N − 16) / 8⌋ + 1 (9,999 for a 5 s clip)."""
    return (samples - KERNEL) // STRIDE + 1


class LMACTDModel(nn.Module):
    """Encoder, representation decoder, dual-path masker and waveform decoder (paper §2).

    Args:
        representation_channels: C_i of the classifier's representations, deepest first.
        layout: "speechbrain-cnn14" (``RepresentationDecoder``) or another (a ``GridDecoder`` onto the
            latent grid (L, channels) of a 5 s clip).
        sizes: ``channels`` (latent N: 256), ``width`` (representation decoder), ``d_model``, ``layers``
            (dual-path blocks), ``intra_layers``, ``inter_layers``, ``intra_heads``, ``inter_heads``,
            ``d_ffn``, ``chunk`` (K): the recipe's 256, 2048, 256, 2, 4, 2, 4, 8, 256, 250.
        alpha_mix: α in [0, 1], the share of the representations' decoding in the masker's input.

    ``forward(waves (B, N), representations)`` → mask (B, channels, L) in [0, 1], x_in and x_out (B, N).
    """

    def __init__(self, representation_channels: list[int], layout: str, sizes: dict, alpha_mix: float):
        super().__init__()
        n = sizes["channels"]
        self.alpha_mix = alpha_mix
        self.encoder = Encoder(kernel_size=KERNEL, out_channels=n)
        self.decoder = Decoder(in_channels=n, out_channels=1, kernel_size=KERNEL, stride=STRIDE, bias=False)
        self.representation_decoder = (RepresentationDecoder(tuple(representation_channels), sizes["width"])
                                       if layout == "speechbrain-cnn14" else
                                       GridDecoder(representation_channels, sizes["width"],
                                                   (latent_frames(CLIP_SAMPLES), n)))

        def block(layers: int, heads: int) -> SBTransformerBlock:
            return SBTransformerBlock(num_layers=layers, d_model=sizes["d_model"], nhead=heads, d_ffn=sizes["d_ffn"],
                                      dropout=0, use_positional_encoding=True, norm_before=True)

        self.masker = Dual_Path_Model(
            in_channels=n, out_channels=sizes["d_model"],
            intra_model=block(sizes["intra_layers"], sizes["intra_heads"]),
            inter_model=block(sizes["inter_layers"], sizes["inter_heads"]), num_layers=sizes["layers"], norm="ln",
            K=sizes["chunk"], num_spks=1, skip_around_intra=True, linear_layer_after_inter_intra=False)
        self.masker.activation = nn.Sigmoid()  # the recipe's activation_type "sigmoid": a mask in [0, 1]

    def forward(self, waves: torch.Tensor, representations: tuple[torch.Tensor, ...]):
        latent = self.encoder(waves)
        decoded = self.representation_decoder(representations)  # (B, 1, T', F')
        channels, frames = latent.shape[1:]
        if decoded.shape[-1] == channels and decoded.shape[2] >= frames:
            decoded = decoded[:, 0, :frames].transpose(1, 2)  # the recipe's crop to the latent's L frames
        else:  # another grid (fewer latent channels, a longer clip): resized onto the latent's (L, channels)
            decoded = F.interpolate(decoded, size=(frames, channels), mode="bilinear")[:, 0].transpose(1, 2)
        mask = self.masker((1 - self.alpha_mix) * latent + self.alpha_mix * decoded)[0]
        length = waves.shape[-1]
        return mask, self.waveform(mask * latent, length), self.waveform((1 - mask) * latent, length)

    def waveform(self, latent: torch.Tensor, length: int) -> torch.Tensor:
        """(B, channels, L) → (B, length): the decoder's output, zero-padded or cropped to ``length``."""
        out = nn.ConvTranspose1d.forward(self.decoder, latent).flatten(1)  # SpeechBrain's squeezes B = 1 away
        return F.pad(out, (0, max(0, length - out.shape[1])))[:, :length]


def lmactd_loss(model: DomainModel, x_in: torch.Tensor, x_out: torch.Tensor, waves: torch.Tensor,
                predicted: torch.Tensor, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The LMAC-TD objective (paper Eq. 2; recipe ``compute_objectives``).

    λ_in·CE(f(x_in), ŷ) − λ_out·CE(f(x_out), ŷ) + λ_1·mean|log1p|STFT(x_in)|| + λ_rec·SI-SNR loss(x_in + x_out, x).

    Args:
        model: the frozen classifier on its own features (``model.features`` of a waveform).
        x_in, x_out, waves: (B, N) interpretation, its complement, the explained input.
        predicted: ŷ (B,), the classifier's class on ``waves``.
        weights: ``lambda_in``, ``lambda_out``, ``lambda_l1``, ``lambda_rec``.
    Returns:
        the scalar loss and its terms (detached 0-d tensors).
    """
    ce_in = F.cross_entropy(model(model.features(x_in)), predicted)
    ce_out = F.cross_entropy(model(model.features(x_out)), predicted)
    l1 = log1p_magnitude(stft(x_in)).abs().mean()
    loss = weights["lambda_in"] * ce_in - weights["lambda_out"] * ce_out + weights["lambda_l1"] * l1
    terms = {"ce_in": ce_in.detach(), "ce_out": ce_out.detach(), "l1": l1.detach()}
    if weights["lambda_rec"]:
        rec = get_si_snr_with_pitwrapper((x_in + x_out)[..., None], waves[..., None]).mean()
        loss = loss + weights["lambda_rec"] * rec
        terms["rec"] = rec.detach()
    return loss, terms


@register("lmac-td")
class LMACTDExplainer(Explainer):
    """LMAC-TD: the explanation is a waveform x_in (B, N) and its complement x_out (``waveforms``);
    the metrics read the domain's features of both, and the map on the domain's grid is
    ``interpretation_mask`` (protocol: "Methods that make waveforms").

    Keywords: ``alpha_mix`` 0.75 (0: the masker reads the waveform's encoding only; 1: the
    representations' decoding only), ``lambda_in`` 5, ``lambda_out`` 0.2, ``lambda_l1`` 6, ``lambda_rec`` 0
    (recipe ``lmactd_cnn14.yaml``), ``weight_decay`` 2e-6; ``epochs`` and ``lr`` default to the profile's
    ``lmactd_epochs`` and ``lmactd_lr`` (paper: 200 and 2e-4), sizes to its ``lmactd_sizes``.
    """

    domains = ("listenable", "mel")  # its map is a ratio of magnitudes: none on signed samples
    returns_mask = True
    reads_representations = True
    makes_waveforms = True
    requires = ("representations",)
    VALUE_RANGES = {"alpha_mix": (0.0, 1.0)}

    def __init__(self, alpha_mix: float = 0.75, lambda_in: float = 5.0, lambda_out: float = 0.2,
                 lambda_l1: float = 6.0, lambda_rec: float = 0.0, weight_decay: float = 2e-6,
                 epochs: int | None = None, lr: float | None = None):
        if not 0.0 <= alpha_mix <= 1.0:
            raise ValueError(f"--set lmac-td.alpha_mix={alpha_mix}: α must lie in [0, 1]")
        super().__init__(alpha_mix=alpha_mix, lambda_in=lambda_in, lambda_out=lambda_out, lambda_l1=lambda_l1,
                         lambda_rec=lambda_rec, weight_decay=weight_decay, epochs=epochs, lr=lr)
        self.model: LMACTDModel | None = None

    def fit(self, resources: TrainingResources) -> None:
        """Train the model on the training clips mixed at 0 dB with noise (as L-MAC; the recipe adds WHAM!
        noise), or load it: shipped reference models, then the cache (``cached_training``)."""
        hp = self.hyperparameters
        hp.update({key: resources.profile[f"lmactd_{key}"] for key in ("epochs", "lr") if hp[key] is None})
        sizes = resources.profile["lmactd_sizes"]
        classifier = resources.classifier
        torch.manual_seed(resources.seed)  # the same initial model whatever ran before
        model = new_model(classifier, sizes, hp["alpha_mix"])
        config = {"kind": "lmac-td", "classifier": resources.classifier_key, "training_data": resources.data_key,
                  "batch_size": resources.profile["lmactd_batch_size"], "seed": resources.seed, **hp, **sizes,
                  **precision.key_part(resources.precision)}
        key = cached_training(model, "lmac-td", config, resources.cache_dir, lambda m: self._train(m, resources),
                              resources.reference_dir, resources.models, resources.expected_models)
        resources.log.append({"lmac-td_checkpoint": key})
        self.model = model.to(resources.device).eval()

    def notes(self) -> list[str]:
        return ["lmac-td rows: the explanation is a waveform x_in and its complement x_out; p_in and p_out come from "
                "the domain's features of each, MM, SPS, COMP, localisation and the curves from the map "
                "clip(X_in / X, 0, 1); its WAVs are x_in"]

    def _train(self, model: LMACTDModel, resources: TrainingResources) -> dict:
        hp = self.hyperparameters
        torch.manual_seed(resources.seed)
        generator = torch.Generator().manual_seed(resources.seed)
        device = resources.device
        model.to(device).train()
        classifier = DomainModel(resources.classifier, DOMAINS[resources.classifier.feature_domain]).eval()
        optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        waveforms = resources.train_waveforms.to(device)
        noise = None if resources.noise_waveforms is None else resources.noise_waveforms.to(device)
        batch_size, history = resources.profile["lmactd_batch_size"], []
        progress = tqdm(range(hp["epochs"]), desc="train LMAC-TD", unit="epoch")
        for epoch in progress:
            order = torch.randperm(len(waveforms), generator=generator)
            terms = []
            for _, noisy in noisy_batches(waveforms, noise, list(order.split(batch_size)), generator,
                                          resources.peak_normalisation):
                with autocast(device, resources.precision):
                    with torch.no_grad():
                        logits, representations = classifier.forward_with_representations(
                            classifier.features(noisy))
                    _, x_in, x_out = model(noisy, representations)
                    loss, logged = lmactd_loss(classifier, x_in, x_out, noisy, logits.argmax(1), hp)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                terms.append({"loss": loss.detach(), **logged})
            summary = {k: float(torch.stack([t[k] for t in terms]).double().mean()) for k in terms[0]}
            history.append({"epoch": epoch + 1, **summary})
            progress.set_postfix(loss=f"{summary['loss']:.3f}", l1=f"{summary['l1']:.3f}")
        model.eval()
        return {"history": history}

    def waveforms(self, waves: torch.Tensor,
                  representations: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """x_in and x_out (B, N) of waveforms ``waves`` (B, N), from the classifier's representations on them.

        Raises:
            RuntimeError: ``fit`` was not called.
        """
        if self.model is None:
            raise RuntimeError("LMAC-TD has no trained model: call fit() first (the harness does)")
        with torch.no_grad():
            _, x_in, x_out = self.model(waves, representations)
        return x_in.float(), x_out.float()

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor,
                  representations: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        raise RuntimeError("LMAC-TD explains waveforms, not features: call waveforms() (benchmark.pipeline.explain "
                           "does)")


def new_model(classifier: Classifier, sizes: dict, alpha_mix: float) -> LMACTDModel:
    """An untrained ``LMACTDModel`` for ``classifier``'s representations (their shapes on a 5 s clip)."""
    channels = [c for c, _, _ in classifier.representation_shapes(CLIP_SAMPLES)]
    return LMACTDModel(channels, classifier.decoder_layout, sizes, alpha_mix)
