"""Command line of the benchmark: ``python run_benchmark.py --dataset esc50 --setting ood`` runs the
benchmark (``benchmark.harness``, or ``--seeds``); ``run_benchmark.py COMMAND`` runs one of the commands
around it (``benchmark.commands``). The options are parsed and checked by ``benchmark.options``."""
from __future__ import annotations

import argparse
import errno
import importlib
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from benchmark.arguments import UsageError, config_from_args, seed_list
from benchmark.commands.seeds import run_seeds
from benchmark.harness import run
from benchmark.options import COMMANDS, build_parser
from foundation import distributed
from foundation.files import DiskFullError
from methods.base import InvalidExplanationError


def what_was_kept(command: str, args: argparse.Namespace) -> str:
    """What a command that stopped (Ctrl-C, a full disk) kept, in words: every file is written under a temporary
    name and moved into place, so none is half-written; a run keeps its finished samples in ``OUT/unfinished/``."""
    out = Path(getattr(args, "out", None) or ".")
    if command == "run" and list((out / "unfinished").glob("per_sample*.csv")):
        return (f"the finished samples are in {out / 'unfinished'} and the earlier results in {out} are untouched; "
                "rerun with --resume to continue")
    if command == "run":
        return f"no sample was finished; the earlier results in {out} are untouched"
    return (f"{command} stopped; what it had finished is kept, and no file is half-written (each is written under "
            "a temporary name, then moved into place)")


def main(argv: list[str] | None = None) -> int:
    """``run_benchmark.py [options]`` runs the benchmark; ``run_benchmark.py explain FILE`` explains one
    file; ``run_benchmark.py bench`` measures the harness's speed; ``run_benchmark.py select-lmac-l1``
    chooses the CPU profile's L-MAC L1 weight on the validation part; ``run_benchmark.py sanity``
    runs the model-parameter randomisation check; ``run_benchmark.py report RUN_DIR`` builds a run's
    listening report and test; ``run_benchmark.py listening-results CSV...`` summarises the ratings;
    ``run_benchmark.py download esc50|us8k`` fetches a dataset; ``run_benchmark.py reference-models
    RUN_DIR...`` ships the models that runs used (maintainers); ``run_benchmark.py rankings RUN_DIR RUN_DIR...``
    compares the methods' rankings under different classifiers; ``run_benchmark.py leaderboard`` writes the
    leaderboard page from the runs' summary.json; ``run_benchmark.py rank RUN_DIR...`` writes the aggregated
    ranking of the methods (one run's, or several runs' together); ``run_benchmark.py meta-evaluate`` meta-evaluates
    every metric (MetaQuantus's perturbation tests) and writes the trust table.

    Returns the exit code: 0; 2 with a one-line message and no traceback for a bad option, missing or
    unreadable data, folder or checkpoint, bad audio, an invalid map, or an --out holding other
    results; 130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else "run"
    if command == "run" and argv and not argv[0].startswith("-"):
        print(f"error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)} (run_benchmark.py "
              "--help lists them; without a command, run_benchmark.py [options] runs the benchmark)", file=sys.stderr)
        return 2
    try:
        args = build_parser(command).parse_args(argv if command == "run" else argv[1:])
    except SystemExit as exit_:  # argparse has printed its message (code 2) or the help (code 0)
        return int(exit_.code or 0)
    current = distributed.ranks()
    threads = getattr(args, "threads", None)
    try:
        if threads is not None and threads < 1:
            raise UsageError(f"--threads {threads}: must be a positive integer")
        torch.set_num_threads(threads or distributed.threads_per_process())
        if current.world_size > 1 and command != "run":
            raise UsageError(f"run_benchmark.py {command} runs in one process; torchrun shards only the benchmark run "
                             "itself: start it with plain python")
        if command != "run":
            print(importlib.import_module(f"benchmark.commands.{COMMANDS[command]}").main(args))
        else:
            config = replace(config_from_args(args), command=shlex.join(["python", "run_benchmark.py", *argv]))
            args.out = config.out  # for the message on Ctrl-C
            seeds = seed_list(args.seeds) if args.seeds else None
            distributed.start(config.device)
            markdown = run_seeds(config, seeds) if seeds else run(config)
            if markdown is not None:
                print(markdown)
    except OSError as error:  # bad option or input; --out taken; a full disk
        text = str(error)
        if error.errno == errno.ENOSPC:
            if not isinstance(error, DiskFullError):  # raised by a library's write, without our message
                where = Path(error.filename).parent if error.filename else Path(getattr(args, "out", None) or ".")
                text = f"no space left on the device of {where}"
            text += f"; {what_was_kept(command, args)}"
        print(f"error: {text}", file=sys.stderr)
        return 2
    except (ValueError, InvalidExplanationError) as error:  # bad option or input
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {what_was_kept(command, args)}", file=sys.stderr)
        return 130
    finally:
        distributed.stop()
    return 0
