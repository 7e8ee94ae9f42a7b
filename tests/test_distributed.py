"""torchrun on this CPU (gloo, 2 processes), tiny profile, real ESC-50 clips: a sharded run writes
the same rows, byte for byte, as one process with the same threads per process; a rank killed mid-run
loses only its unfinished batch and the run resumes to the same tables; DDP training gives a checkpoint
that one process loads."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.reproduction import agrees, compare_per_sample
from tests.conftest import ESC50

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
SLOW_EXPLAINER = '''
import time

import torch

from methods import Explainer, register


@register("slow-ones")
class SlowOnes(Explainer):
    """All-ones, one second per sample: a run long enough to kill a rank in the middle of it."""

    returns_mask = True

    def attribute(self, model, features, target):
        time.sleep(1.0)
        return torch.ones_like(features)
'''


def options(out, cache, *extra):
    return ["--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "4", "--batch-size", "2",
            "--out", str(out), "--cache-dir", str(cache), *extra]


def torchrun(*argv, env=None) -> subprocess.Popen:
    return subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "run_benchmark.py", *argv],
                            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen, timeout: float = 600) -> int:
    output, _ = process.communicate(timeout=timeout)
    if process.returncode:
        print(output[-4000:])
    return process.returncode


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    assert main(options(root / "one", root / "cache", "--methods", "saliency,lmac", "--domains",
                        "listenable,mel")) == 0
    return root


def test_two_processes_write_the_rows_of_one(one_process, tmp_path):
    out = tmp_path / "two"
    methods = ("--methods", "saliency,lmac", "--domains", "listenable,mel")
    assert finished(torchrun(*options(out, one_process / "cache", *methods))) == 0  # 1 thread per process here
    # one process with the same threads per process: the same bytes
    assert main(options(tmp_path / "one-thread", one_process / "cache", *methods, "--threads", "1")) == 0
    for name in ("per_sample.csv", "table.csv", "table.md"):
        assert (out / name).read_bytes() == (tmp_path / "one-thread" / name).read_bytes(), name
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert not (out / "unfinished").exists()
    # with all the cores, the passes can differ in the last bits: the rows agree within the tolerance that
    # holds between machines (benchmark.reproduction), and are far closer than it
    two, one = (pd.read_csv(path / "per_sample.csv") for path in (out, one_process / "one"))
    report = compare_per_sample(one, two)
    assert report["rows"] == len(one) and agrees(report), report
    assert max(report["largest"].values()) < 1e-6


def worker_of_rank(launcher: subprocess.Popen, rank: int) -> int:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(launcher.pid)], capture_output=True,
                              text=True).stdout.split()
    for pid in children:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environment:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} among {children}")


def data_rows(path: Path) -> int:
    return max(0, len(path.read_bytes().splitlines()) - 1) if path.exists() else 0


def test_a_killed_rank_loses_only_its_batch_and_the_run_resumes(one_process, tmp_path):
    (tmp_path / "slow_ones.py").write_text(SLOW_EXPLAINER)
    env = {"PYTHONPATH": str(tmp_path)}
    common = ("--import", "slow_ones", "--methods", "saliency,slow-ones", "--controls", "none")
    launcher = torchrun(*options(tmp_path / "two", one_process / "cache", *common), env=env)
    rank_rows = tmp_path / "two" / "unfinished" / "per_sample.rank-1.csv"
    deadline = time.time() + 300
    while data_rows(rank_rows) < 4 and launcher.poll() is None and time.time() < deadline:  # one batch: 2 × 2 rows
        time.sleep(0.2)
    assert launcher.poll() is None, "the run ended before a rank could be killed"
    os.kill(worker_of_rank(launcher, 1), signal.SIGKILL)
    assert finished(launcher) != 0
    kept = data_rows(rank_rows)
    assert 4 <= kept < 8  # rank 1's first batch survived the kill, its second is not finished
    assert not (tmp_path / "two" / "per_sample.csv").exists()  # nothing was published

    assert finished(torchrun(*options(tmp_path / "two", one_process / "cache", *common, "--resume"), env=env)) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(options(tmp_path / "one", one_process / "cache", *common, "--threads", "1")) == 0
    finally:
        sys.path.remove(str(tmp_path))
    for name in ("per_sample.csv", "table.csv"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_ddp_training_gives_a_checkpoint_that_one_process_loads_and_uses(tmp_path):
    cache = tmp_path / "cache"
    common = ("--methods", "saliency", "--controls", "none", "--limit", "2")
    assert finished(torchrun(*options(tmp_path / "two", cache, *common))) == 0
    (checkpoint,) = cache.glob("classifier-*.pt")
    assert json.loads(checkpoint.with_suffix(".json").read_text())["config"]["ddp_world_size"] == 2
    assert main(options(tmp_path / "one", cache, *common, "--classifier-checkpoint", str(checkpoint))) == 0
    one, two = (pd.read_csv(tmp_path / name / "per_sample.csv") for name in ("one", "two"))
    assert one["predicted"].tolist() == two["predicted"].tolist()
    assert np.allclose(one["confidence"], two["confidence"]) and np.allclose(one["FF"], two["FF"])
