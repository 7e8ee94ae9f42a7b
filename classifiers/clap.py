"""CLAP (Wu et al., "Large-scale contrastive language-audio pretraining", ICASSP 2023; ``transformers``'
``ClapModel``) as a zero-shot classifier of the dataset's classes: ``--classifier hf:CLAP_FOLDER_OR_ID``.

Classes: the dataset's, given after it is opened (``use_class_names``): class i's prompt is
``template.format(name)`` with the name's underscores read as spaces (ESC-50's "chirping_birds" is "chirping
birds", as a caption would say it; default template ``DEFAULT_TEMPLATE``, the zero-shot audio-classification pipeline's;
``--prompt-template`` changes it), embedded once by the text tower. Logits (B, C): the model's
``logits_per_audio``, exp(logit_scale_a) · cos(audio embedding, prompt embedding); the benchmark explains
the predicted class, so no label is needed.

Features (the ``mel`` domain): ``ClapFeatureExtractor``'s log-mel in torch, differentiable: the clip is
resampled from 16 kHz to the extractor's rate (48 kHz), then |STFT|² (periodic Hann window of
``fft_window_size`` = 1024, hop 480 = 10 ms, centred with reflect padding), the extractor's own mel filters
(HTK scale without norm for ``truncation="fusion"``, Slaney scale and norm otherwise), floored at 1e-10, in
dB: (B, T, 64) with T = 501 for a 5 s clip, the clip's own frames. ``model_input`` builds the model's 10 s
input from them as the extractor builds it from samples, by indexing frames (``frame_layout``): padding
"repeatpad" (the default) repeats the clip's frames as the extractor repeats its samples, then silence (−100
dB, the mel of zeros); "repeat" repeats them to the end; "pad" gives the clip once, then silence. A mask on
a clip frame therefore applies to every repetition. The extractor's input to within 0.01 dB (float32 STFT
noise in bins near −90 dB) for a clip of whole 10 ms hops (every benchmark clip), except at each seam
between two repetitions, where the extractor's windows see the clip's end followed by its start and ours the
clip's reflect padding: 3 frames per seam (for a 5 s clip, model frames 499–501 of 1001). A fused model
(``enable_fusion``, truncation "fusion") gets the 4 identical channels and ``is_longer`` False, as the
extractor gives a short clip (the extractor also marks one random clip of an all-short batch longer; that
draw is not made). A clip longer than ``max_length_s`` keeps its first 10 s (the extractor crops or fuses
random parts; no benchmark clip is).

Representations: the outputs of the audio encoder's (HTSAT: Chen et al., ICASSP 2022) last
``REPRESENTATION_STAGES`` Swin stages (before their patch merging), deepest first. The encoder folds the
(1024 interpolated frames × 64 mel) input into a 256 × 256 image of 4 time chunks stacked along the
frequency axis (``ClapAudioEncoder.reshape_mel2img``); ``unfold`` undoes that on each stage's token grid,
giving time × frequency. The time axis spans the model's 10 s input; ``repetitions`` views it on the clip:
the r whole repetitions of the clip, stacked as channels, (B, r·C, T', F') (T' = 16 of a 5 s clip at the
last stage of HTSAT-base), so that a map on T' is a map of the clip. GradCAM reads that view of the last
stage's output through ``cam_grid`` (an identity module).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from classifiers.base import Classifier, ClassifierPass
from foundation.frontend import resample

DEFAULT_TEMPLATE = "This is a sound of {}."
"""The prompt of the zero-shot audio-classification pipeline of ``transformers``."""

REPRESENTATION_STAGES = 3
"""How many of the last Swin stages' outputs are the representations (fewer if the encoder has fewer)."""

SILENCE_DB = -100.0
"""The extractor's log-mel of silence: 10·log10(1e-10)."""

SETTINGS = ("feature_size", "sampling_rate", "hop_length", "max_length_s", "fft_window_size", "frequency_min",
            "frequency_max", "truncation", "padding")


def check_template(template: str | None, classifier: str = "hf:") -> None:
    """Refuse a ``--prompt-template`` without one "{}" to hold the class name, or given for a classifier that is
    not a pretrained (``hf:``) one.

    Raises:
        ValueError: naming the flag and the fix.
    """
    if template is None:
        return
    if not classifier.startswith("hf:"):
        raise ValueError(f"--prompt-template words the prompts of a zero-shot CLAP model; --classifier {classifier} "
                         "has its own classes: drop --prompt-template or pass --classifier hf:CLAP_FOLDER_OR_ID")
    try:
        ok = template.count("{}") == 1 and template.format("x") != template
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"--prompt-template {template!r}: give one {{}} where the class name goes and no other "
                         f"braces, e.g. {DEFAULT_TEMPLATE!r}")


def unfold(tokens: torch.Tensor, height: int, width: int, chunks: int) -> torch.Tensor:
    """A stage's tokens (B, height·width, C) on HTSAT's folded image → (B, C, chunks·width, height / chunks):
    image rows are (time chunk, frequency) and columns time within the chunk (``reshape_mel2img``), so time
    is chunk·width + column."""
    batch, _, channels = tokens.shape
    image = tokens.transpose(1, 2).reshape(batch, channels, chunks, height // chunks, width)
    return image.permute(0, 1, 2, 4, 3).reshape(batch, channels, chunks * width, height // chunks)


def refold(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of ``unfold``: (B, C, chunks·width, F) → tokens (B, height·width, C)."""
    batch, channels, time, bands = grid.shape
    image = grid.reshape(batch, channels, time // width, width, bands).permute(0, 1, 2, 4, 3)
    return image.reshape(batch, channels, height * width).transpose(1, 2)


class ZeroShotCLAP(Classifier):
    """A ``ClapModel`` and its ``ClapFeatureExtractor`` and tokenizer as a zero-shot classifier (module docstring).

    Args:
        model: the ``ClapModel`` (eval mode); extractor: its ``ClapFeatureExtractor``; tokenizer: its tokenizer.
    Raises:
        ValueError: an extractor whose mel bins are not the model's, or a fusion extractor for an unfused model.
    """

    zero_shot = True

    def __init__(self, model: nn.Module, extractor: Any, tokenizer: Any):
        super().__init__([])
        self.model, self.tokenizer = model, tokenizer
        self.settings = {k: getattr(extractor, k) for k in SETTINGS}
        self.sample_rate = int(self.settings["sampling_rate"])
        audio = model.config.audio_config
        if self.settings["feature_size"] != audio.num_mel_bins:
            raise ValueError(f"its feature extractor gives {self.settings['feature_size']} mel bins where the model "
                             f"reads {audio.num_mel_bins}: save the model's own ClapFeatureExtractor")
        self.fusion = self.settings["truncation"] == "fusion"
        if self.fusion and not audio.enable_fusion:
            raise ValueError("its feature extractor fuses 4 mel channels (truncation 'fusion') for a model without "
                             "fusion: save the model's own ClapFeatureExtractor (truncation 'rand_trunc')")
        filters = extractor.mel_filters if self.fusion else extractor.mel_filters_slaney
        self.register_buffer("mel_filters", torch.tensor(filters, dtype=torch.float32), persistent=False)
        self.register_buffer("text_embeds", torch.zeros(0, model.config.projection_dim), persistent=False)
        self.template, self.prompts = DEFAULT_TEMPLATE, []
        self.cam_grid = nn.Identity()
        encoder = model.audio_model.audio_encoder
        self.chunks, self.spec_width = encoder.freq_ratio, encoder.spec_size * encoder.freq_ratio
        self.stages = list(encoder.layers)
        for stage in self.stages[-REPRESENTATION_STAGES:]:
            stage.register_forward_hook(self._keep_stage)
        self._kept: list[torch.Tensor] = []
        self._clip_frames = 0

    @property
    def extractor_settings(self) -> dict[str, Any]:
        """The feature settings and the prompts (``classifiers.huggingface.weights_key`` hashes them)."""
        return {**self.settings, "prompts": list(self.prompts)}

    @torch.no_grad()
    def use_class_names(self, names: list[str], template: str | None = None) -> None:
        """Classify into ``names`` (the dataset's, in target order): embed the prompts ``template.format(name)``
        (None: ``DEFAULT_TEMPLATE``) once with the text tower, tokenised together with padding as the pipeline.

        Raises:
            ValueError: a template without "{}" (``check_template``).
        """
        check_template(template)
        self.template = DEFAULT_TEMPLATE if template is None else template
        self.class_names = list(names)
        self.prompts = [self.template.format(name.replace("_", " ")) for name in names]
        tokens = self.tokenizer(self.prompts, padding=True, return_tensors="pt").to(self.text_embeds.device)
        training = self.model.training
        embeds = self.model.eval().get_text_features(**tokens).pooler_output
        self.model.train(training)
        self.text_embeds = embeds.to(self.text_embeds.dtype)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) at 16 kHz → the clip's log-mel frames (B, T, 64) in dB at the extractor's rate, T = 1 + N' // hop
        (501 for 5 s), differentiable (module docstring)."""
        s = self.settings
        with torch.autocast(waveform.device.type, enabled=False):
            samples = resample(waveform.float(), self.sample_rate)
            window = torch.hann_window(s["fft_window_size"], periodic=True, device=samples.device)
            spec = torch.stft(samples, s["fft_window_size"], s["hop_length"], window=window, center=True,
                              pad_mode="reflect", return_complex=True)
            power = spec.real.square() + spec.imag.square()  # (B, 513, T)
            mel = torch.einsum("bft,fm->btm", power, self.mel_filters).clamp_min(1e-10)
            return 10.0 * torch.log10(mel)

    def frame_layout(self, frames: int) -> tuple[torch.Tensor, int, int]:
        """For a clip of ``frames`` feature frames: (index, r, period): index (M,) the clip frame of each of the
        model's M = 1 + max_samples // hop frames (``frames`` for silence), r the whole repetitions it holds,
        period the frames of one repetition (the clip's hops)."""
        s = self.settings
        model_frames = 1 + s["max_length_s"] * s["sampling_rate"] // s["hop_length"]
        period = max(frames - 1, 1)
        j = torch.arange(model_frames)
        if period >= model_frames - 1:  # as long as the model's input, or longer: its first frames
            return j, 1, model_frames - 1
        reps = {"repeat": -(-(model_frames - 1) // period), "pad": 1}.get(s["padding"], (model_frames - 1) // period)
        index = torch.where(j < reps * period, j % period, torch.where(j == reps * period, frames - 1, frames))
        return index, min(reps, (model_frames - 1) // period), period

    def model_input(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip frames (B, T, 64) → the model's ``input_features`` (B, 4 or 1, M, 64) (4 identical channels for
        truncation "fusion") and ``is_longer`` (B, 1), False, as the extractor gives them for a short clip."""
        index, _, _ = self.frame_layout(features.shape[1])
        silence = features.new_full((len(features), 1, features.shape[2]), SILENCE_DB)
        frames = torch.cat([features, silence], 1)[:, index.to(features.device)].unsqueeze(1)
        longer = torch.zeros(len(features), 1, dtype=torch.bool, device=features.device)
        return (frames.expand(-1, 4, -1, -1) if self.fusion else frames), longer

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        if not self.prompts:
            raise RuntimeError("the zero-shot CLAP classifier has no classes yet: call use_class_names(names)")
        self._kept, self._clip_frames = [], features.shape[1]
        input_features, is_longer = self.model_input(features)
        audio = self.model.get_audio_features(input_features=input_features, is_longer=is_longer).pooler_output
        logits = self.model.logit_scale_a.exp() * audio @ self.text_embeds.t().to(audio.dtype)
        kept, self._kept, self._clip_frames = tuple(reversed(self._kept)), [], 0
        return ClassifierPass(logits, kept)

    def repetitions(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A time × frequency grid (B, C, T', F') of the model's whole input → (the clip's r whole repetitions
        stacked as channels (B, r·C, p, F'), the tokens after them (B, C, T' − r·p, F')). Token k covers the
        model's frames k·(S/T')·(M−1)/(S−1) onwards (its bicubic stretch of M frames to S = 1024, corners
        aligned), so a repetition spans p ≈ period·(S−1)·T' / ((M−1)·S) tokens (16 of 32 for a 5 s clip at
        HTSAT-base's last stage; its edges within 1/60 of a token); when that is not near a whole number the
        view is the whole grid (r = 1)."""
        index, reps, period = self.frame_layout(self._clip_frames)
        frames, tokens = len(index), grid.shape[2]
        stretch = (self.spec_width - 1) / (frames - 1) if frames < self.spec_width else 1.0
        exact = period * stretch * tokens / self.spec_width
        p = round(exact)
        if p < 1 or reps * p > tokens or reps * abs(exact - p) >= 0.5:
            reps, p = 1, tokens
        batch, channels, _, bands = grid.shape
        view = grid[:, :, : reps * p].reshape(batch, channels, reps, p, bands).transpose(1, 2)
        return view.reshape(batch, reps * channels, p, bands), grid[:, :, reps * p:]

    def _keep_stage(self, stage: nn.Module, args: tuple, output: tuple) -> tuple | None:
        if not self._clip_frames:  # the model called outside ``forward_with_representations``: left as it is
            return None
        height, width = output[2][:2]  # the stage's resolution before its patch merging
        view, rest = self.repetitions(unfold(output[1], height, width, self.chunks))
        if stage is not self.stages[-1]:
            self._kept.append(view)
            return None
        view = self.cam_grid(view)  # the last stage merges no patches: its output is output[1]
        self._kept.append(view)
        batch, channels, _, bands = rest.shape
        whole = view.reshape(batch, -1, channels, view.shape[2], bands).transpose(1, 2).reshape(batch, channels, -1,
                                                                                                 bands)
        tokens = refold(torch.cat([whole, rest], 2), height, width)
        return (tokens, tokens, *output[2:])

    def cam_layer(self) -> nn.Module:
        """The last stage's output on the clip's time × frequency grid, (B, r·C, p, F')."""
        return self.cam_grid

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The audio projection, then the Swin stages from the last down, then the patch embedding (the text
        tower, which gives the class prompts, and the normalisations are kept)."""
        levels = [("audio projection", [self.model.audio_projection])]
        for i, stage in enumerate(reversed(self.stages)):
            count = len(self.stages)
            levels.append((f"audio projection + stages {count}–{count - i}" if i else
                           f"audio projection + stage {count}", [stage]))
        return [*levels, ("audio projection + all stages + patch embedding",
                          [self.model.audio_model.audio_encoder.patch_embed])]

    def describe(self) -> dict[str, Any]:
        audio = self.model.config.audio_config
        return {**super().describe(), "model_type": "clap", "zero_shot": True, "prompt_template": self.template,
                "fusion": bool(audio.enable_fusion), "depths": list(audio.depths), **self.settings}


def load_clap(name: str, source: str, local: bool) -> ZeroShotCLAP:
    """The ``ClapModel``, ``ClapFeatureExtractor`` and tokenizer of folder or hub id ``source``, in eval mode, with
    no classes yet (``ZeroShotCLAP.use_class_names``).

    Raises:
        ValueError: no ClapFeatureExtractor, no tokenizer, a model without its text tower's weights, or an
            extractor that does not match the model (each message names the fix).
    """
    from transformers import AutoFeatureExtractor, AutoTokenizer, ClapFeatureExtractor, ClapModel

    def refuse(why: str) -> ValueError:
        return ValueError(f"--classifier hf:{name}: {why}")

    save = "save the model with its ClapProcessor (feature extractor and tokenizer) using save_pretrained"
    try:
        extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as error:
        raise refuse(f"a CLAP model without its feature extractor ({str(error).splitlines()[0][:120]}); {save}") \
            from None
    if not isinstance(extractor, ClapFeatureExtractor):
        raise refuse(f"its feature extractor is a {type(extractor).__name__}, not a ClapFeatureExtractor; {save}")
    missing = "a CLAP model without its tokenizer, which zero-shot classification needs to embed the class prompts"
    try:  # without tokenizer files, transformers builds an empty one (its special tokens only): refused too
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError, TypeError) as error:
        raise refuse(f"{missing} ({str(error).splitlines()[0][:120]}); {save}") from None
    if len(tokenizer.get_vocab()) <= len(set(tokenizer.all_special_ids)):
        raise refuse(f"{missing} (none saved: an empty {type(tokenizer).__name__} was built); {save}")
    try:
        model, info = ClapModel.from_pretrained(source, local_files_only=local, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise refuse(f"the ClapModel does not load ({str(error).splitlines()[0][:120]}); save it with "
                     "save_pretrained into the folder") from None
    missing = [key for key in info["missing_keys"] if key.startswith(("text_model.", "text_projection."))]
    if missing:
        raise refuse(f"a CLAP model without its text tower's weights ({len(missing)} missing, e.g. {missing[0]}); "
                     "save the whole ClapModel (not only ClapAudioModel) with save_pretrained")
    vocabulary = model.config.text_config.vocab_size
    if len(tokenizer) > vocabulary:
        raise refuse(f"its tokenizer knows {len(tokenizer)} tokens, its text model {vocabulary}; {save}")
    try:
        classifier = ZeroShotCLAP(model.eval(), extractor, tokenizer).eval()
    except ValueError as error:
        raise refuse(str(error)) from None
    classifier.name = f"hf:{name}"
    return classifier
