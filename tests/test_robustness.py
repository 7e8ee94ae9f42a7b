"""The robustness metrics (docs/robustness.md): each of the four against Quantus on a shared case, the
perturbation, the re-explanations on real clips with the shipped CPU CNN14, and the flags of a real run."""
import math

import numpy as np
import pandas as pd
import pytest
import quantus
import torch

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.explanations import explain
from benchmark.options import build_parser
from benchmark.pipeline import EvaluationSamples, prepare_batch, sample_seed
from benchmark.robustness import NOISE_STREAM, perturbed_batch, robustness_draws, robustness_options
from classifiers.base import DomainModel
from classifiers.cnn14 import CNN14Classifier
from datasets.contamination import ContaminatedSample
from foundation.checkpoints import REFERENCE_MODELS, load_state
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from methods import build_explainer
from metrics import MetricInputs, RobustnessDraws, draw_values, perturb_features, registered_metrics
from tests.conftest import ESC50, ESC50_CLASSES

COLUMNS = ["Max-Sens", "Avg-Sens", "RIS", "ROS"]
QUANTUS = {"Max-Sens": quantus.MaxSensitivity, "Avg-Sens": quantus.AvgSensitivity,
           "RIS": quantus.RelativeInputStability, "ROS": quantus.RelativeOutputStability}
RTOL = 1e-5  # Quantus passes the inputs through the model in float32; everything else agrees to float64 rounding


# --- the four metrics against Quantus on a shared case ------------------------------------------------------------
# A linear classifier of 3 classes on (1, 5, 6) inputs, an explanation |w_c| ⊙ tanh(x) (deterministic), 4 draws
# of noise fed to both Quantus (as its perturb_func) and ours; in draw 1 sample 0 is replaced by sample 1, whose
# predicted class differs: a changed prediction.
B, D, H, W = 3, 4, 5, 6


@pytest.fixture(scope="module")
def shared_case():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(H * W, 3)).eval().requires_grad_(False)
    rng = np.random.default_rng(0)
    while True:
        x = rng.uniform(0.1, 1.0, (B, 1, H, W))
        y = model(torch.from_numpy(x).float()).argmax(1).numpy()
        if y[0] != y[1]:
            break
    draws = [x + 0.05 * rng.standard_normal(x.shape) for _ in range(D)]
    draws[1][0] = x[1]
    return model, x, y, draws


def explain_linear(model, inputs, targets, **_):
    weights = model[1].weight.detach().numpy()[np.asarray(targets)].reshape(len(targets), 1, H, W)
    return np.abs(weights) * np.tanh(inputs)


def quantus_scores(name, model, x, y, draws, **options):
    feed = iter(draws)
    metric = QUANTUS[name](nr_samples=len(draws), perturb_func=lambda arr, indices, **_: next(feed).reshape(arr.shape),
                           disable_warnings=True, **options)
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, explain_func=explain_linear, device="cpu"))


def our_scores(model, x, y, draws):
    e = torch.from_numpy(explain_linear(model, x, y))
    h = model(torch.from_numpy(x).float())
    values = [draw_values(torch.from_numpy(x), torch.from_numpy(xp), h, model(torch.from_numpy(xp).float()), e,
                          torch.from_numpy(explain_linear(model, xp, y))) for xp in draws]
    inputs = MetricInputs(e[:, 0], h, h, h, robustness=RobustnessDraws.stack(values, len(x)))
    return {name: np.asarray(m.compute(inputs)) for name, m in registered_metrics().items() if m.needs_robustness}


def test_each_metric_equals_quantus_on_the_same_draws(shared_case):
    model, x, y, draws = shared_case
    ours = our_scores(model, x, y, draws)
    assert ours["Rob-changed"].tolist() == [1, 0, 0]
    for name in ("Max-Sens", "Avg-Sens"):  # Quantus' default: a changed draw counts, as here
        np.testing.assert_allclose(ours[name], quantus_scores(name, model, x, y, draws), rtol=RTOL)
    for name in ("RIS", "ROS"):
        theirs = quantus_scores(name, model, x, y, draws)
        assert np.isnan(theirs[0]) and not np.isnan(ours[name][0])  # Quantus: one changed draw → the sample NaN
        np.testing.assert_allclose(ours[name][1:], theirs[1:], rtol=RTOL)
        kept = [d for k, d in enumerate(draws) if k != 1]  # ours: the max over the draws that keep the class
        np.testing.assert_allclose(ours[name][0], quantus_scores(name, model, x, y, kept)[0], rtol=RTOL)
    assert ours["RIS"][1:].min() > 0.1 and ours["ROS"].min() > 1.0  # not a degenerate case


def test_an_explanation_proportional_to_the_input_has_ris_one_and_a_fixed_map_zero(shared_case):
    model, x, y, draws = shared_case
    x, xp = torch.from_numpy(x), torch.from_numpy(draws[0])
    h = model(x.float())
    same = draw_values(x, xp, h, model(xp.float()), 3 * x, 3 * xp)  # e = 3x: (e − e′)/e = (x − x′)/x
    np.testing.assert_allclose(same["input_stability"], 1.0, rtol=1e-12)
    fixed = draw_values(x, xp, h, model(xp.float()), x, x)
    assert fixed["sensitivity"].tolist() == fixed["input_stability"].tolist() == [0.0] * B


# --- the perturbation ------------------------------------------------------------------------------------------------
def test_the_noise_is_level_times_each_samples_std_seeded_and_clamped_only_where_non_negative(clips):
    features = log1p_magnitude(stft(clips))  # (2, T, 513): the listenable grid
    perturbed = perturb_features(features, 0.1, torch.Generator().manual_seed(3))
    assert perturbed.min() >= 0 and perturbed.shape == features.shape
    again = perturb_features(features, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(perturbed, again)
    unclamped = perturbed != 0
    noise = (perturbed - features)[unclamped].view(-1)
    sigma = features.flatten(1).std(1)
    assert abs(noise.std().item() / (0.1 * sigma.mean().item()) - 1) < 0.05
    signed = perturb_features(clips, 0.5, torch.Generator().manual_seed(3))
    assert signed.min() < clips.min()  # waveform samples are not clamped
    ratio = (signed - clips).std(1) / clips.std(1)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), rtol=0.01)
    for level in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="positive finite"):
            perturb_features(features, level, torch.Generator())


# --- the re-explanations, on real clips with the shipped CPU CNN14 ---------------------------------------------------
@pytest.fixture(scope="module")
def shipped_cnn14():
    classifier = CNN14Classifier.build(ESC50_CLASSES, "cpu")
    load_state(classifier, REFERENCE_MODELS / "classifier-4c943bc11c4e0594.pt")
    return classifier.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def real_batch(clips, shipped_cnn14):
    samples = [ContaminatedSample(k, f"clip{k}", "", 1.0, 0.0, "clean") for k in range(2)]
    evaluation = EvaluationSamples(samples, clips, {}, [49, 42])
    model = DomainModel(shipped_cnn14, DOMAINS["listenable"], per_sample=True).eval()
    return model, prepare_batch(model, evaluation, [0, 1], torch.device("cpu"))


def test_a_seeded_random_map_is_explained_the_same_and_the_energy_map_gives_the_known_sensitivity(real_batch):
    model, batch = real_batch
    random = build_explainer("random")
    draws = robustness_draws(model, random, batch, explain(model, random, batch, seed=5), 5, 3, 0.1, None)
    assert np.all(draws.sensitivity == 0) and np.all(draws.input_stability == 0)  # the same per-sample seed
    energy = build_explainer("energy")
    draws = robustness_draws(model, energy, batch, explain(model, energy, batch, seed=5), 5, 3, 0.1, 1)
    generator = torch.Generator().manual_seed(sample_seed(5, 0, NOISE_STREAM))
    x = batch.features[0].double()
    for d in range(3):
        xp = perturb_features(batch.features[:1], 0.1, generator)[0].double()
        expected = (xp / xp.max() - x / x.max()).norm() / (x / x.max()).norm()
        assert draws.sensitivity[0, d] == pytest.approx(expected.item(), rel=1e-5)
        assert 0.01 < expected < 0.5
    assert np.isnan(draws.sensitivity[1]).all() and np.isnan(draws.changed[1]).all()  # beyond --robustness-samples 1
    assert draws.changed[0].tolist() == [0, 0, 0]


def test_saliency_is_re_explained_for_the_original_class_when_the_prediction_changes(real_batch):
    model, batch = real_batch
    saliency, level = build_explainer("saliency"), 1.5  # noise that changes both predictions
    generators = [torch.Generator().manual_seed(sample_seed(0, i, NOISE_STREAM)) for i in batch.ids]
    perturbed = perturbed_batch(model, batch, False, level, generators)
    assert (perturbed.unmasked.logits.argmax(1) != batch.unmasked.logits.argmax(1)).any()
    for_original = explain(model, saliency, perturbed, 0, batch.unmasked.logits.argmax(1)).mask
    assert not torch.equal(explain(model, saliency, perturbed, 0).mask, for_original)
    draws = robustness_draws(model, saliency, batch, explain(model, saliency, batch, 0), 0, 1, level, None)
    assert draws.changed[:, 0].tolist() == (perturbed.unmasked.logits.argmax(1)
                                            != batch.unmasked.logits.argmax(1)).double().tolist()
    e = explain(model, saliency, batch, 0).mask
    expected = (for_original - e).double().flatten(1).norm(dim=1) / e.double().flatten(1).norm(dim=1)
    np.testing.assert_allclose(draws.sensitivity[:, 0], expected.numpy(), rtol=1e-6)


def test_a_method_that_makes_waveforms_is_perturbed_on_the_waveform(real_batch):
    model, batch = real_batch
    generators = [torch.Generator().manual_seed(7) for _ in batch.ids]
    perturbed = perturbed_batch(model, batch, True, 0.1, generators)
    noisy = torch.cat([perturb_features(batch.waves[k: k + 1], 0.1, torch.Generator().manual_seed(7))
                       for k in range(2)])
    assert torch.equal(perturbed.waves, noisy)
    assert torch.allclose(perturbed.features, model.features(noisy))


# --- the command line ------------------------------------------------------------------------------------------------
def test_the_options_defaults_and_the_runs_identity():
    parser = build_parser()
    assert robustness_options(parser.parse_args([])) == {"robustness": False}
    options = robustness_options(parser.parse_args(["--robustness"]))
    assert options == {"robustness": True, "robustness_samples": None, "robustness_draws": 10,
                       "robustness_level": 0.1}
    assert not any(k.startswith("robustness") for k in RunConfig().identity())  # earlier runs keep their identity
    config = RunConfig(**robustness_options(parser.parse_args(
        ["--robustness", "--robustness-samples", "3", "--robustness-draws", "4", "--robustness-level", "0.05"])))
    assert {k: v for k, v in config.identity().items() if k.startswith("robustness")} == {
        "robustness": True, "robustness_samples": 3, "robustness_draws": 4, "robustness_level": 0.05}


def test_a_real_run_gets_exactly_the_four_columns_and_without_the_flag_nothing_changes(tmp_path):
    """Two real ESC-50 clips (--dataset folder) with the shipped CPU CNN14, nothing trained."""
    for name, label in (("4-164021-A-1.wav", "rooster"), ("4-182395-A-0.wav", "dog")):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / name).write_bytes((ESC50 / "audio" / name).read_bytes())
    common = ["--dataset", "folder", "--data-root", str(tmp_path / "data"), "--setting", "clean", "--profile", "cpu",
              "--classifier-checkpoint", str(REFERENCE_MODELS / "classifier-4c943bc11c4e0594.pt"), "--methods",
              "saliency", "--controls", "random", "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "robust"), "--robustness", "--robustness-samples", "1",
                 "--robustness-draws", "2"]) == 0
    plain, robust = (pd.read_csv(tmp_path / name / "per_sample.csv") for name in ("plain", "robust"))
    assert list(robust.columns) == [*plain.columns, *COLUMNS, "Rob-changed"]
    pd.testing.assert_frame_equal(robust[plain.columns], plain)
    assert robust.loc[robust["sample_id"] == 1, COLUMNS].isna().all().all()  # beyond --robustness-samples 1
    first = robust[robust["sample_id"] == 0].set_index("method")
    assert first.loc["random", COLUMNS].tolist() == [0.0] * 4  # the same seed draws the same map
    assert (first.loc["saliency", COLUMNS] > 0).all()
    tables = {name: pd.read_csv(tmp_path / name / "table.csv") for name in ("plain", "robust")}
    assert [c for c in tables["robust"].columns if c not in tables["plain"].columns][::4] == COLUMNS
    plain_md, robust_md = ((tmp_path / name / "table.md").read_text() for name in ("plain", "robust"))
    assert "Max-Sens" not in plain_md and "Max-Sens ↓" in robust_md and "RIS ↓" in robust_md
    assert "2 draws per sample" in robust_md and "the first 1 evaluated samples" in robust_md
