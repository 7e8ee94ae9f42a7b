"""The shipped reference models: intact, used without training, and giving the committed per-sample rows
at another thread count and batch size (``benchmark.reproduction``)."""
import json
import os
import subprocess
import sys

import pandas as pd

from benchmark.arguments import config_from_args
from benchmark.cli import main
from benchmark.options import build_parser
from benchmark.preparation import reference_dir
from benchmark.reproduction import TOLERANCE, agrees, compare_per_sample
from foundation.checkpoints import REFERENCE_MODELS, reference_manifest, sha256_of
from tests.conftest import ESC50, ROOT

MAIN_JOB = ROOT / "results" / "esc50-ood-mixtures-cpu"


def test_every_shipped_model_is_listed_with_its_sha256_and_provenance():
    manifest = reference_manifest(REFERENCE_MODELS)
    kinds = {entry["kind"] for entry in manifest.values()}
    assert {"classifier", "lmac", "lmac-mel", "lmac-waveform", "lmac-ft", "lmac-ft-mel", "l2i", "lmac-td", "piq",
            "piq-mel"} <= kinds
    for name, entry in manifest.items():
        path = REFERENCE_MODELS / name
        assert sha256_of(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        assert path.with_suffix(".json").is_file() and entry["command"].startswith("python run_benchmark.py")
        assert entry["profile"] == "cpu" and entry["code"] and entry["training_audio"]
        assert entry["classifier_valid_accuracy"] > 0.2
    assert sum(entry["bytes"] for entry in manifest.values()) < 100e6  # a few MB each (a CNN14 PIQ: 13 MB)
    shipped = set(p.name for p in REFERENCE_MODELS.glob("*.pt"))
    assert shipped == set(manifest)


def test_the_main_job_with_the_shipped_models_gives_the_committed_rows_at_other_threads_and_batch_size(tmp_path):
    out = tmp_path / "out"
    assert main(["--data-root", str(ESC50), "--limit", "3", "--threads", "1", "--batch-size", "4",
                 "--cache-dir", str(tmp_path / "empty-cache"), "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert {m["source"] for m in record["models"]} == {"shipped"}
    assert not list((tmp_path / "empty-cache").glob("*.pt"))  # nothing was trained
    assert "shipped reference model" in (out / "table.md").read_text()
    report = compare_per_sample(pd.read_csv(MAIN_JOB / "per_sample.csv"), pd.read_csv(out / "per_sample.csv"))
    assert report["rows"] == 6 * 5 and agrees(report), report
    assert max(report["largest"].values()) < TOLERANCE


def test_the_ast_run_with_the_shipped_models_gives_the_committed_rows(tmp_path):
    out = tmp_path / "out"
    assert main(["--classifier", "ast", "--data-root", str(ESC50), "--limit", "1", "--methods",
                 "saliency,gradcam,lmac,lmac-td,piq", "--domains", "listenable,mel", "--controls", "none",
                 "--cache-dir", str(tmp_path / "empty-cache"), "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert {m["source"] for m in record["models"]} == {"shipped"} and len(record["models"]) == 6
    report = compare_per_sample(pd.read_csv(ROOT / "results" / "esc50-ood-cpu-all-ast" / "per_sample.csv"),
                                pd.read_csv(out / "per_sample.csv"))
    assert report["rows"] == 2 * 5 * 2 and agrees(report), report


def test_the_compared_methods_with_the_shipped_models_give_the_committed_rows(tmp_path):
    """LMAC-TD and PIQ come shipped (nothing trains) and, with Occlusion, give the committed rows of
    ``results/esc50-ood-cpu-compared-methods`` in both domains."""
    out = tmp_path / "out"
    assert main(["--data-root", str(ESC50), "--limit", "1", "--methods", "lmac-td,piq,occlusion",
                 "--domains", "listenable,mel", "--controls", "none", "--cache-dir", str(tmp_path / "empty-cache"),
                 "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert {m["source"] for m in record["models"]} == {"shipped"} and len(record["models"]) == 4
    assert record["evaluations_per_sample"] == {"occlusion": {"listenable": 49, "mel": 49}}
    report = compare_per_sample(pd.read_csv(ROOT / "results" / "esc50-ood-cpu-compared-methods" / "per_sample.csv"),
                                pd.read_csv(out / "per_sample.csv"))
    assert report["rows"] == 2 * 3 * 2 and agrees(report), report


def test_the_same_rows_with_the_kernels_of_another_processor(tmp_path):
    """Another CPU runs other kernels: oneDNN and ATen are limited to AVX2 (this machine has AVX-512),
    which changes the rounding of every convolution, as a machine without AVX-512 would."""
    other_cpu = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                 "MKL_ENABLE_INSTRUCTIONS": "AVX2", "LMAC_BENCHMARK_CACHE": str(tmp_path / "empty-cache")}
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "run_benchmark.py", "--data-root", str(ESC50), "--limit", "3",
                             "--out", str(out)], cwd=ROOT, env=other_cpu, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = compare_per_sample(pd.read_csv(MAIN_JOB / "per_sample.csv"), pd.read_csv(out / "per_sample.csv"))
    assert report["rows"] == 6 * 5 and agrees(report), report


def test_the_shipped_waveform_model_gives_the_committed_rows_with_another_processors_kernels(tmp_path):
    """The wav2vec2 model and its L-MAC decoders, shipped: nothing trains, and with the kernels of a CPU without
    AVX-512 the rows are the committed ones within the tolerance, in the listenable and the waveform domain."""
    other_cpu = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                 "MKL_ENABLE_INSTRUCTIONS": "AVX2", "LMAC_BENCHMARK_CACHE": str(tmp_path / "empty-cache")}
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "run_benchmark.py", "--classifier", "wav2vec2", "--data-root", str(ESC50),
                             "--limit", "1", "--methods", "saliency,gradcam,lmac", "--domains", "listenable,waveform",
                             "--controls", "none", "--out", str(out)], cwd=ROOT, env=other_cpu, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert {m["source"] for m in record["models"]} == {"shipped"} and len(record["models"]) == 3
    assert not (tmp_path / "empty-cache").exists() or not list((tmp_path / "empty-cache").glob("*.pt"))
    report = compare_per_sample(pd.read_csv(ROOT / "results" / "esc50-ood-cpu-all-wav2vec2" / "per_sample.csv"),
                                pd.read_csv(out / "per_sample.csv"))
    assert report["rows"] == 2 * 3 * 2 and agrees(report), report


def test_a_row_beyond_the_tolerance_or_a_clear_flip_is_found():
    rows = pd.read_csv(MAIN_JOB / "per_sample.csv").head(10)
    assert agrees(compare_per_sample(rows, rows.copy()))
    moved = rows.copy()
    moved.loc[3, "FF"] += 2 * TOLERANCE
    assert compare_per_sample(rows, moved)["beyond_tolerance"]["FF"] == 1
    flipped = rows.copy()
    flipped.loc[0, "AI"] = 100 - flipped.loc[0, "AI"]
    clear = abs(rows.loc[0, "AI-margin"]) > TOLERANCE
    assert compare_per_sample(rows, flipped)["binary_flips"]["AI"] == int(clear)
    other = rows.copy()
    other.loc[1, "predicted"] += 1
    assert not agrees(compare_per_sample(rows, other))


def test_retrain_ignores_the_shipped_models_and_is_another_configuration(tmp_path):
    config = config_from_args(build_parser().parse_args(["--data-root", str(ESC50), "--retrain",
                                                         "--cache-dir", str(tmp_path)]))
    assert config.retrain and reference_dir(config) is None
    assert config.identity() != config_from_args(build_parser().parse_args(
        ["--data-root", str(ESC50), "--cache-dir", str(tmp_path)])).identity()
