"""The harness benchmark (run_benchmark.py bench) on real ESC-50 clips, tiny profile."""
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.commands.timing import ModelPassTimer
from benchmark.config import RunConfig
from benchmark.explanations import explain
from benchmark.harness import evaluate
from benchmark.pipeline import EvaluationSamples, prepare_batch
from benchmark.store import ResultWriter
from classifiers.base import DomainModel
from datasets.contamination import ContaminatedSample
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from methods import build_explainer
from methods.lmac_decoders import LMACDecoder
from tests.conftest import ESC50


def test_bench_table_and_batch_size_independent_metrics(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "2", "--batch-size", "4",
                 "--methods", "saliency,gradcam,lmac,all-ones",
                 "--per-sample-methods", "saliency,gradcam,lmac,all-ones",
                 "--repeats", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    table = pd.read_csv(out / "bench.csv")
    assert table["method"].tolist() == ["(shared per batch)", "saliency", "gradcam", "lmac", "all-ones"]
    methods = table.iloc[1:]
    # the batched harness (batch 4) and the per-sample loop give the same per-sample metrics
    assert (methods["max |Δ metric|"] <= 1e-5).all()
    assert ((methods["model passes s"] > 0) & (methods["model passes s"] < methods["total s"])).all()
    assert (methods["samples/s"] > 0).all() and (methods["peak MiB"] > 50).all()
    batched = pd.read_csv(out / "per_sample" / "saliency-batch4.csv")
    single = pd.read_csv(out / "per_sample" / "saliency-batch1.csv")
    assert len(batched) == len(single) == 4 and batched["SPS"].notna().all()
    assert batched["MM"].nunique() == 4  # four different real maps, not a constant
    assert "samples/s" in (out / "bench.md").read_text()


def test_model_pass_timer_counts_classifier_passes_and_restores_them(small_classifier, clips):
    model = DomainModel(small_classifier, DOMAINS["listenable"]).eval()
    features = log1p_magnitude(stft(clips))
    original = DomainModel.forward
    with ModelPassTimer([], torch.device("cpu"), type(small_classifier)) as timer:
        x = features.clone().requires_grad_()
        torch.autograd.grad(model(x)[:, 0].sum(), x)
    assert timer.seconds > 0
    assert DomainModel.forward is original and torch.autograd.grad.__name__ == "grad"
    with ModelPassTimer([], torch.device("cpu"), type(small_classifier)) as idle:
        features.abs()
    assert idle.seconds == 0


def test_the_main_job_sends_8_inputs_per_sample_through_cnn14(small_classifier, clips, tmp_path):
    """One unmasked pass shared by saliency, L-MAC and all-ones (1), saliency's gradient pass (1),
    and two masked passes per method (6): L-MAC reads the unmasked pass's representations."""
    samples = [ContaminatedSample(i, f"clip {i}", "", 1.0, 0.0, "clean") for i in range(len(clips))]
    evaluation = EvaluationSamples(samples, clips, {}, [0, 1])
    lmac = build_explainer("lmac")
    channels = tuple(c for c, _, _ in small_classifier.representation_shapes(80000))
    lmac.decoders["listenable"] = LMACDecoder(channels, 8).eval()
    explainers = [build_explainer("saliency"), lmac, build_explainer("all-ones")]
    config = RunConfig(methods=["saliency", "lmac", "all-ones"], batch_size=2)
    with ModelPassTimer([], torch.device("cpu"), type(small_classifier)) as timer:
        evaluate(config, small_classifier, explainers, evaluation, ResultWriter(tmp_path / "rows.csv"), tmp_path)
    assert timer.classifier_samples == 8 * len(clips)
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 3 * len(clips)


@pytest.mark.parametrize("method, options", [("smoothgrad", {"n_samples": 3}), ("shap", {})])
def test_a_stochastic_method_draws_the_same_for_a_sample_in_any_batch(method, options, small_classifier, clips):
    model = DomainModel(small_classifier, DOMAINS["listenable"], per_sample=True).eval()
    samples = [ContaminatedSample(i, f"clip {i}", "", 1.0, 0.0, "clean") for i in range(len(clips))]
    evaluation = EvaluationSamples(samples, clips, {}, [0, 1])
    explainer = build_explainer(method, **options)
    cpu = torch.device("cpu")
    pair = explain(model, explainer, prepare_batch(model, evaluation, [0, 1], cpu), seed=0).mask
    alone = explain(model, explainer, prepare_batch(model, evaluation, [1], cpu), seed=0).mask
    other_seed = explain(model, explainer, prepare_batch(model, evaluation, [1], cpu), seed=1).mask
    assert torch.equal(pair[1], alone[0])  # sample 1 second in a batch of two, or alone
    assert (other_seed[0] - alone[0]).abs().max() > 1e-3  # the draws are random, seeded by the run's seed
