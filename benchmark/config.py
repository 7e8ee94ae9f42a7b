"""The configuration of a run: everything its results depend on, and where and how it runs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from metrics.robustness import DEFAULT_DRAWS, DEFAULT_LEVEL


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in run.json).

    classifier: a registered classifier name (``classifiers``) or ``hf:PATH_OR_ID``;
    folds: "TRAIN:VALID:EVALUATION:POOL" fold lists; data_folds: read only these folds' clips;
    setting: the evaluation condition, "id", "ood" or "clean" (with ``contamination`` for
    ood: "mixtures", "speech" or "white_noise"); methods: registry names; methods_all: they are
    ``--methods all``, so that methods the classifier cannot serve are left out rather than refused; imports: user
    modules registering more methods; method_options: per-method constructor keywords;
    domains: "listenable" and/or the classifier's own, "mel" or "waveform"; limit: evaluate only the first N base clips;
    ad_softmax_twice: AD as in the published code (True) or single softmax; peak_normalisation:
    "max" (x / x.max(), the reference's) or "absmax" (x / max|x|) for clips and mixtures;
    resume: continue the results in ``out`` instead of replacing them; curves: also compute the
    deletion and insertion curves (12 more classifier passes per map); training_seed: seed of
    training the classifier and the trainable explainers when it differs from ``seed`` (``--seeds``),
    which still seeds the split, the contaminant draws and the explainers' random draws;
    precision: "fp32" or "bf16" (autocast in evaluation and training, ``foundation.precision``);
    retrain: ignore the shipped reference models (``foundation.checkpoints.REFERENCE_MODELS``) and
    train into the checkpoint cache, or load what was trained there before; shuffle_labels: the controlled
    dataset's training and validation labels permuted (``benchmark.reliance`` must refuse the classifier);
    prompt_template: the class prompts of a zero-shot CLAP classifier, "{}" the class name (None: its default,
    ``classifiers.clap.DEFAULT_TEMPLATE``); robustness: also compute the robustness metrics (Max-Sens,
    Avg-Sens, RIS, ROS: ``robustness_draws`` perturbed copies of each input with Gaussian noise of
    ``robustness_level`` times its standard deviation, each explained again; ``metrics.robustness``) for the
    first ``robustness_samples`` evaluated samples (None: all); command: the command
    line that started the run (for the record only).
    """

    dataset: str = "esc50"
    classifier: str = "cnn14"
    setting: str = "ood"
    contamination: str = "mixtures"
    data_root: str | None = None
    folds: str | None = None
    data_folds: str | None = None
    classifier_checkpoint: str | None = None
    noise_dir: str | None = None
    speech_dir: str | None = None
    methods: list[str] = field(default_factory=lambda: ["saliency", "lmac", "all-ones", "random", "energy"])
    methods_all: bool = False
    imports: list[str] = field(default_factory=list)
    method_options: dict[str, dict] = field(default_factory=dict)
    domains: list[str] = field(default_factory=lambda: ["listenable"])
    profile: str = "cpu"
    limit: int | None = None
    out: str = "results/runs/esc50-ood-mixtures-cpu"
    cache_dir: str = ""
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 16
    ad_softmax_twice: bool = True
    peak_normalisation: str = "max"
    save_audio: bool = False
    resume: bool = False
    curves: bool = False
    training_seed: int | None = None
    precision: str = "fp32"
    retrain: bool = False
    shuffle_labels: bool = False
    prompt_template: str | None = None
    robustness: bool = False
    robustness_samples: int | None = None
    robustness_draws: int = DEFAULT_DRAWS
    robustness_level: float = DEFAULT_LEVEL
    command: str = ""

    @property
    def effective_training_seed(self) -> int:
        """The seed of training: ``training_seed``, or ``seed`` when that is None."""
        return self.seed if self.training_seed is None else self.training_seed

    def identity(self) -> dict:
        """The settings that define the results (not where or how fast they are computed).

        On CPU every sample is explained alone with its own seeded draws, so the batch size
        does not change a result. Elsewhere (CUDA) the passes are batched and the random draws
        of SmoothGrad, SHAP and the random control are seeded once per batch: there the batch
        size is part of the identity, so a resumed run cannot mix rows of two batch sizes.
        """
        where_and_how = {"limit", "out", "cache_dir", "device", "batch_size", "save_audio", "resume",
                         "command", "methods_all"}
        identity = {k: v for k, v in asdict(self).items() if k not in where_and_how}
        if not self.shuffle_labels:  # added later: left out when off, so earlier runs keep their identity
            del identity["shuffle_labels"]
        if self.prompt_template is None:  # added later, as shuffle_labels
            del identity["prompt_template"]
        if not self.robustness:  # added later, as shuffle_labels
            for key in ("robustness", "robustness_samples", "robustness_draws", "robustness_level"):
                del identity[key]
        if not self.device.startswith("cpu"):
            identity["batched_draws"] = {"device_type": self.device.split(":")[0], "batch_size": self.batch_size}
        return identity


def condition_name(config: RunConfig) -> str:
    """"id (noise at 0 dB)", "ood mixtures", "ood speech", "ood white_noise" or "clean"."""
    return {"id": "id (noise at 0 dB)", "clean": "clean"}.get(config.setting, f"ood {config.contamination}")
