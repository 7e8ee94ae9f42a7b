"""``run_benchmark.py download esc50|us8k``: the official archive, checked and unpacked (``datasets.download``)."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from benchmark.arguments import check_writable_folder
from datasets import roots
from datasets.download import download


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py download``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py download",
        description="Download a dataset's official archive (with a progress bar; an interrupted download "
                    "continues), check its checksum, unpack it, check that it holds the metadata and every clip "
                    "that lists, move it into the data root (default ~/.cache/lmac-benchmark/esc50 or "
                    ".../UrbanSound8K, else $ESC50_ROOT / $US8K_ROOT) and print the command that "
                    "runs the benchmark on it. The only command that downloads.")
    parser.add_argument("dataset", choices=["esc50", "us8k"], help="esc50 (about 650 MB) or us8k (about 6 GB)")
    parser.add_argument("--data-root", help="folder to create (default: the dataset's default data root)")
    parser.add_argument("--url", help="another source of the same archive (a mirror): an http://, https:// or "
                                      "file:// URL (a local archive: file:///absolute/path.zip; a bare path is "
                                      "refused); other schemes are refused before anything is fetched")
    parser.add_argument("--checksum", help="the archive's sha256:HEX or md5:HEX when --url serves another file")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py download esc50|us8k``: fetch, check and unpack the archive (``datasets.download``)."""
    env, name = ("ESC50_ROOT", "esc50") if args.dataset == "esc50" else ("US8K_ROOT", "UrbanSound8K")
    root = Path(args.data_root or os.environ.get(env) or roots.default_cache_dir(name)).expanduser()
    check_writable_folder(str(root.parent), "--data-root")
    download(args.dataset, root, args.url, args.checksum)
    return (f"unpacked {args.dataset} into {root}\nnext: python run_benchmark.py --dataset {args.dataset} "
            f"--data-root {shlex.quote(str(root))}")
