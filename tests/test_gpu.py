"""What needs a GPU (skipped without one; ``.ci/gpu`` runs them on a lent machine): the CUDA path
gives the CPU path's per-sample results within float tolerance and bf16 autocast works there."""
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from tests.conftest import ESC50

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run .ci/gpu on one)")


def run(out, cache, *extra):
    return main(["--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "4",
                 "--methods", "saliency,gradcam,lmac", "--domains", "listenable,mel", "--out", str(out),
                 "--cache-dir", str(cache), *extra])


def test_cuda_gives_the_cpu_results(tmp_path):
    cache = tmp_path / "cache"
    assert run(tmp_path / "cpu", cache, "--device", "cpu") == 0
    (classifier,) = cache.glob("classifier-*.pt")
    # the CPU-trained models, so that only the evaluation's device differs
    assert run(tmp_path / "cuda", cache, "--device", "cuda", "--classifier-checkpoint", str(classifier)) == 0
    cpu, cuda = (pd.read_csv(tmp_path / name / "per_sample.csv") for name in ("cpu", "cuda"))
    deterministic = cpu["method"].isin(["saliency", "gradcam", "all-ones", "energy"])  # no random draws
    assert (cpu["predicted"] == cuda["predicted"]).all()
    for metric in ("FF", "MM", "SPS", "Loc-AUC"):
        difference = (cpu.loc[deterministic, metric] - cuda.loc[deterministic, metric]).abs().max()
        assert difference < 1e-3, metric


def test_bf16_on_cuda_stays_close_to_fp32(tmp_path):
    cache = tmp_path / "cache"
    assert run(tmp_path / "fp32", cache, "--device", "cuda", "--methods", "saliency,gradcam") == 0
    (classifier,) = cache.glob("classifier-*.pt")
    assert run(tmp_path / "bf16", cache, "--device", "cuda", "--methods", "saliency,gradcam", "--precision", "bf16",
               "--classifier-checkpoint", str(classifier)) == 0
    bf16 = pd.read_csv(tmp_path / "bf16" / "per_sample.csv")
    assert bf16[["FF", "MM", "SPS"]].notna().all().all() and (bf16["MM"] > 0).all()

