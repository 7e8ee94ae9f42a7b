"""Entry point: ``python run_benchmark.py --dataset esc50 --setting ood`` (see --help)."""
import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
