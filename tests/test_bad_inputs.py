"""Every bad input of the README's table gets exit code 2, a one-line message naming the flag or
file and the fix, no traceback, and comes before anything trains (a training call fails the test)."""
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import benchmark.preparation
import methods.l2i
import methods.lmac
from benchmark.cli import main
from benchmark.options import COMMANDS
from benchmark.output_folder import write_mark
from datasets.sources import open_dataset
from tests.bad_input_files import bad_files, clips_per_class, esc50_tree, model_folders
from tests.conftest import ESC50

ROOT = Path(__file__).resolve().parents[1]
META = pd.read_csv(ESC50 / "meta" / "esc50.csv")


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    return model_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture
def files(tmp_path, saved_models):
    return {**bad_files(tmp_path), **saved_models}


# one case a line: the arguments (shell syntax) => text the message must contain;
# {name} is a path of the ``files`` fixture
CASE_TABLE = """
--limit 0                                                  => --limit 0: must be a positive integer
--limit -3                                                 => --limit -3
--limit abc                                                => --limit
--batch-size 0                                             => --batch-size 0
--batch-size -1                                            => --batch-size -1
--methods ''                                               => --methods '': name at least one method
--methods saliency,lmca                                    => unknown method(s) lmca
--domains spectral                                         => --domains 'spectral'
--device nonsense                                          => --device 'nonsense': not a torch device
--device cuda:7                                            => --device cuda:7: no such CUDA device
--seed -1                                                  => --seed -1
--robustness --robustness-level 0                          => --robustness-level 0.0: must be a positive finite
--robustness --robustness-level -0.1                       => --robustness-level -0.1: must be a positive finite
--robustness --robustness-level inf                        => --robustness-level inf: must be a positive finite
--robustness --robustness-level nan                        => --robustness-level nan: must be a positive finite
--robustness --robustness-draws 0                          => --robustness-draws 0: must be a positive integer
--robustness --robustness-draws -2                         => --robustness-draws -2: must be a positive integer
--robustness --robustness-samples 0                        => --robustness-samples 0: must be a positive integer
--robustness-draws 5                                       => --robustness-draws 5: sets the robustness metrics
--folds a:b:c:d                                            => --folds: 'a' is not a fold list
--folds 1-3:4                                              => expected TRAIN:VALID:EVALUATION:POOL
--methods l2i --l2i-rth abc                                => --l2i-rth 'abc'
--methods lmac-ft --lmac-ft-cth 2                          => --lmac-ft-cth 2.0
--peak-normalisation rms                                   => --peak-normalisation
--set lmac.nosuchkey=1                                     => lmac has no hyperparameter 'nosuchkey'
--set lmac.lambda_l1=abc                                   => --set lmac.lambda_l1=abc: expected a number
--set lmac.l1_batch_scaled=maybe                           => expected true or false
--methods occlusion --set occlusion.window=99999           => at most the 5000 ms clip; take a window in (0, 5000] ms
--methods lime --set lime.n_samples=0                      => --set lime.n_samples=0: 0 is out of range
--methods kernel-shap --set kernel-shap.baseline=silence   => unknown baseline; take one of zeros, mean, noise
--methods feature-ablation --set feature-ablation.bands=32 => do not make 32 bands of ceil(513 / 32) bins; take bands=31
--methods occlusion --domains mel --set occlusion.bands=100 => the mel grid has 80 bins, fewer than 100 bands
--methods lmac-td --set lmac-td.alpha_mix=1.5               => lmac-td.alpha_mix takes a finite number in [0.0, 1.0]
--set l2i.rth=0.3                                          => l2i is not among --methods
--set lmca.lambda_l1=1                                     => unknown method 'lmca'
--set lmac                                                 => expected METHOD.KEY=VALUE
--import no_such_module_anywhere                           => --import no_such_module_anywhere
--setting id                                               => pass --noise-dir
--contamination speech                                     => pass --speech-dir
--setting id --noise-dir '{missing}'                       => --noise-dir
--classifier-checkpoint '{missing}'                        => --classifier-checkpoint
--classifier-checkpoint '{random}'                         => random.json is missing beside it
--classifier-checkpoint '{described_random}'               => not a readable PyTorch checkpoint
--classifier-checkpoint '{evil}'                           => refused: the file holds Python objects other than tensors
--lmac-checkpoint '{missing}'                              => --lmac-checkpoint
--lmac-checkpoint '{random}'                               => {random}: not a readable PyTorch checkpoint
--lmac-checkpoint '{evil}'                                 => refused
--lmac-checkpoint '{not_a_decoder}'                        => not an L-MAC decoder state dict
--data-root '{missing}'                                    => esc50 not found
--data-root '{header_only}'                                => lists no clip
--data-root '{one_per_class}'                              => the split leaves no evaluation clip
--data-root '{two_per_class}'                              => the split leaves no validation clip
--dataset us8k --data-root '{us8k}'                        => the split leaves no validation clip
explain '{missing}'                                        => missing.pt
explain '{random}'                                         => cannot read audio file
--out '{a_file}'                                           => --out {a_file}: a file, not a folder
--out '{a_file}/run'                                       => is a file, so the folder cannot be made
--cache-dir '{a_file}'                                     => --cache-dir {a_file}: a file, not a folder
--threads -2                                               => --threads -2: must be a positive integer
--methods saliency,saliency                                => saliency named twice
--controls random,random                                   => random named twice
--domains mel,mel                                          => a domain named twice
--set lmac.lambda_l1=nan                                   => nan is out of range
--set lmac.epochs=0                                        => lmac.epochs takes a finite number in [1, ∞)
--set lmac.lambda_l1=[0.4,0.4]                             => no value twice
--methods lmac-ft --set lmac-ft.cth=-2                     => lmac-ft.cth takes a finite number in [-1.0, 1.0]
--import lmac_test_raising_module                          => importing it raised RuntimeError: broken on purpose
--import '{unclear_missing_module_file}'                   => --import {unclear_missing_module_file}: no such file
--import '{unclear_raising_file}'                          => importing it raised RuntimeError: loaded from its path
--import lmac_test_unclear_absent                          => (--import path/to/lmac_test_unclear_absent.py)
--import lmac_test_unclear_hf_user                         => so Hugging Face datasets cannot be imported there
--import '{unclear_hf_attribute_user}'                     => line 2); the module wants Hugging Face datasets
--set saliency.x=1                                         => saliency has no hyperparameter 'x'; saliency has none
explain '{unclear_recordings}'                             => a folder; explain takes one audio file
--dataset folder --data-root '{unclear_recordings}' --folds 1:1:1:1 => --folds 1:1:1:1: --dataset folder has no folds
--dataset folder --data-root '{unclear_recordings}' --data-folds 4 => --data-folds 4: --dataset folder has no folds
--data-root '{unclear_target_minus_one}'                   => , line 4: target -1 is not a class id of this dataset
--data-root '{unclear_target_50}'                          => esc50.csv, line 4: target 50 is not a class id
--data-root '{unclear_target_text}'                        => esc50.csv, line 4: target 'dog' is not an integer
--dataset us8k --data-root '{unclear_us8k_class_id}'       => , line 5: classID 10 is not a class id of this dataset
--data-root '{repeated_row}'                               => is listed more than once
--data-root '{bad_fold}'                                   => line 5: fold 'x' is not an integer
--data-root '{truncated}'                                  => {truncated_clip} is truncated
report '{run_without_column}'                              => lacks the column(s) AI
sanity --threads -2                                        => --threads -2
sanity --methods gradcam,gradcam                           => gradcam named twice
meta-evaluate --repetitions 0                              => --repetitions 0: must be a positive integer
meta-evaluate --input-noise 0,5                            => --input-noise '0,5': each level must be a positive finite
meta-evaluate --model-noise 0.001,inf                      => --model-noise '0.001,inf': each level must be a positive
meta-evaluate --input-noise nan,5                          => --input-noise 'nan,5': each level must be a positive
meta-evaluate --model-noise 0.001                          => expected two numbers RESILIENCE,ADVERSARY, e.g. 0.001,1
meta-evaluate --input-noise 5,0.001                        => the resilience level must be below the adversary level
meta-evaluate --agreement '{missing}'                      => --agreement {missing}: no such file
meta-evaluate --agreement '{a_file}'                       => lacks the column(s) domain, metric, truth, tau, ci_low
bench --out '{a_file}'                                     => --out {a_file}: a file, not a folder
select-lmac-l1 --set lmac.lambda_l1=inf                    => inf is out of range
explain '{truncated_clip}'                                 => is truncated
download esc50 --checksum sha1:00                          => expected sha256:HEX or md5:HEX
download esc50 --data-root '{download_root}' --url ftp://h/a.zip => --url ftp://h/a.zip: expected an http://, https://
download esc50 --data-root '{download_root}' --url '{download_missing}' => for a local file: file://{download_missing}
download esc50 --data-root '{download_root}' --url 'file://{download_missing}' => no such file {download_missing}
download esc50 --data-root '{download_root}' --url 'file://{download_bare}' --checksum {download_bare_sum} => no audio/
download esc50 --data-root '{download_root}' --url 'file://{download_gap}' --checksum {download_gap_sum} => are absent
--folds 1-3:4:4:5                                          => --folds 1-3:4:4:5: the data in
--out ''                                                   => --out is empty
--data-root ' '                                            => --data-root is empty
--data-folds 9                                             => lists no clip of these folds
--classifier nosuch                                        => unknown classifier; registered: cnn14, ast
--classifier 'hf:{missing}'                                => no such folder
--classifier 'hf:{empty_folder}'                           => the folder holds no transformers config.json
--classifier 'hf:{bert}'                                   => a 'bert' model; hf: explains the audio-classification
--classifier 'hf:{ast_three_classes}'                      => knows 3 classes, the dataset has 50
--classifier 'hf:{ast_four_seconds}'                       => reads at most 400 frames (4.00 s), fewer than the 498
--classifier 'hf:{ast_wav2vec2_extractor}'                 => its feature extractor is a Wav2Vec2FeatureExtractor, where
--classifier 'hf:{bert}' --prompt-template 'a sound'      => give one {{}} where the class name goes
--prompt-template 'the sound of {{}}'                      => --classifier cnn14 has its own classes
--classifier ast --classifier-checkpoint '{random}'        => --classifier-checkpoint loads CNN14 checkpoints
--import lmac_test_bare_classifier --classifier bare --methods lmac => --classifier bare gives no representations
--import lmac_test_bare_classifier --classifier bare --methods lmac-td => --classifier bare gives no representations
--import lmac_test_bare_classifier --classifier bare --methods gradcam => gives no layer for class activation maps
--import lmac_test_bare_classifier --classifier bare --methods guided-backprop => gives no nn.ReLU modules
--out /                                                    => --out /: the root of the file system
--save-audio --out '{esc50_root}'                          => is the data root (--data-root)
--out '{esc50_root}/audio'                                 => lies inside the data root (--data-root)
--out '{cache_inside}'                                     => lies inside the checkpoint cache (--cache-dir)
--out '{committed}'                                        => is the repository's committed results
--save-audio --out '{user_audio}'                          => is not a run's folder (no .benchmark-run.json); it holds
--out '{user_unfinished}'                                  => is not a run's folder (no .benchmark-run.json)
--import lmac_test_three_outputs --classifier three-outputs --methods saliency => (B, classes): observed (1, 3)
--import lmac_test_nan_classifier --classifier nan --methods saliency => --classifier nan gives NaN or infinite
--import lmac_test_flat_cam --classifier flat-cam --methods gradcam => output (B, C, T', F'): observed (1, 80,
--import lmac_test_detached --classifier detached --methods saliency => reach the features; observed none
"""
CASES = [(shlex.split(arguments), expected.strip())
         for arguments, expected in (line.split(" => ") for line in CASE_TABLE.strip().splitlines())]


@pytest.mark.parametrize("arguments, expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_with_a_message_before_any_training(arguments, expected, files, tmp_path, capsys,
                                                              monkeypatch):
    def training_started(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    for owner, name in ((benchmark.preparation, "train_classifier"), (methods.lmac.LMACExplainer, "_train"),
                        (methods.l2i.L2IExplainer, "_train")):
        monkeypatch.setattr(owner, name, training_started)
    monkeypatch.syspath_prepend(str(tmp_path))  # where lmac_test_raising_module.py lies
    arguments = [a.format(**{k: str(v) for k, v in files.items()}) for a in arguments]
    expected = expected.format(**{k: str(v) for k, v in files.items()})
    earlier = tmp_path / "out" / "table.md"  # what a run found in its folder (a run's own) stays as it was
    write_mark(earlier.parent, {"identity": None})
    earlier.write_text("earlier")
    if arguments[0] in ("report", "download"):
        command, options, base = arguments, [], []
    else:
        takes_file = arguments[0] == "explain"
        command = arguments[:2] if takes_file else arguments[:1] if arguments[0] in COMMANDS else []
        options = arguments[len(command):]
        base = ["--profile", "tiny", "--cache-dir", str(tmp_path / "cache")]
        base += [] if "--out" in options else ["--out", str(tmp_path / "out")]
        base += [] if "--data-root" in options else ["--data-root", str(ESC50)]
    assert main([*command, *base, *options]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    assert not files["marker"].exists()  # the hostile pickle did not run
    assert "weights_only=False" not in error
    assert not list((tmp_path / "cache").glob("*.pt"))  # nothing trained
    assert sorted(p.name for p in earlier.parent.iterdir() if not p.name.startswith(".")) == [earlier.name]
    assert earlier.read_text() == "earlier"


def test_a_bad_input_through_the_real_command_line_is_exit_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "run_benchmark.py", "--data-root", str(ESC50), "--batch-size", "0",
                             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --batch-size 0: must be a positive integer"


def test_any_label_set_maps_to_contiguous_targets_with_its_class_names(tmp_path):
    root = esc50_tree(tmp_path / "subset", clips_per_class(8, targets=(0, 1, 10)))  # dog, rooster, rain
    data = open_dataset("esc50", str(root), seed=0)
    assert data.class_names == ["dog", "rooster", "rain"]
    assert sorted(data.meta["target"].unique()) == [0, 1, 2]
    assert set(data.split.train["target"]) == {0, 1, 2}
    out = tmp_path / "out"
    assert main(["--data-root", str(root), "--profile", "tiny", "--methods", "saliency", "--limit", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "per_sample.csv")["label"]) <= {0, 1, 2}
    classifier = json.loads(next((tmp_path / "cache").glob("classifier-*.json")).read_text())
    assert classifier["config"]["class_names"] == ["dog", "rooster", "rain"]


def test_set_values_take_the_type_of_the_keywords_default(tmp_path):
    from benchmark.arguments import config_from_args
    from benchmark.options import build_parser
    args = build_parser().parse_args(["--methods", "lmac,l2i", "--set", "lmac.l1_batch_scaled=false",
                                      "--set", "lmac.epochs=3", "--set", "l2i.rth=[0.1, 0.3]",
                                      "--set", "lmac.lambda_l1=1"])
    options = config_from_args(args).method_options
    assert options["lmac"] == {"l1_batch_scaled": False, "epochs": 3, "lambda_l1": 1.0}
    assert options["l2i"]["rth"] == [0.1, 0.3]
    assert isinstance(options["lmac"]["lambda_l1"], float)


def test_a_second_run_on_a_folder_in_use_stops_at_once_and_a_killed_runs_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from benchmark.output_folder import FolderLock; "
                               "held = FolderLock(Path(sys.argv[1]), '--out'); "
                               "print('locked', flush=True); time.sleep(600)", str(out)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        arguments = ["--profile", "tiny", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                     "--data-root", str(tmp_path / "no-data")]
        assert main(arguments) == 2
        error = capsys.readouterr().err
        assert f"--out {out} is in use by another run (pid {holder.pid}, started" in error
    finally:
        holder.kill()  # as kill -9: the OS frees its lock
        holder.wait()
    assert main(arguments) == 2  # now the run takes the folder and goes on to the next check
    assert "esc50 not found" in capsys.readouterr().err


def test_a_corrupt_cached_model_names_the_file_to_delete(tmp_path, capsys):
    arguments = ["--profile", "tiny", "--methods", "saliency", "--controls", "none", "--limit", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--data-root", str(ESC50)]
    assert main(arguments) == 0
    cached = next((tmp_path / "cache").glob("classifier-*.pt"))
    cached.write_bytes(cached.read_bytes()[:1000])
    capsys.readouterr()
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert f"Delete {cached} and run again" in error and "Traceback" not in error

