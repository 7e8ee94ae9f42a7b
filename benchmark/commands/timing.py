"""What ``run_benchmark.py bench`` measures with: the wall time inside model passes
(``ModelPassTimer``) and the peak memory (``PeakMemory``) while a piece of work runs."""
from __future__ import annotations

import contextlib
import functools
import os
import resource
import threading
import time
from pathlib import Path

import torch
from torch import nn

from classifiers.base import Classifier, DomainModel


class ModelPassTimer(contextlib.AbstractContextManager):
    """Wall time (s) spent inside model passes while the context is open.

    Times the classifier passes (``DomainModel.forward``, ``forward_with_representations``),
    the ``forward`` of the given explainer networks, ``torch.autograd.grad`` and
    ``Tensor.backward``; nested calls count once. On CUDA every span is synchronised.
    Also counts the inputs that went through the classifier (``classifier_samples``: calls of its
    ``forward_with_representations``, which its ``forward`` goes through).
    """

    def __init__(self, networks: list[nn.Module], device: torch.device, classifier: type[Classifier]):
        self.seconds = 0.0
        self.classifier_samples = 0  # inputs that went through the classifier
        self._classifier = classifier
        self._depth = 0
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._targets = [(DomainModel, "forward"), (DomainModel, "forward_with_representations"),
                         (torch.autograd, "grad"), (torch.Tensor, "backward"),
                         *{(type(network), "forward") for network in networks}]
        self._originals: list = []

    def _timed(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._sync()
            start = time.perf_counter()
            self._depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                self._sync()
                self.seconds += time.perf_counter() - start
        return wrapper

    def _counted(self, function):
        @functools.wraps(function)
        def wrapper(module, mel, *args, **kwargs):
            self.classifier_samples += len(mel)
            return function(module, mel, *args, **kwargs)
        return wrapper

    def __enter__(self):
        for owner, name, wrap in [*((owner, name, self._timed) for owner, name in self._targets),
                                  (self._classifier, "forward_with_representations", self._counted)]:
            original = getattr(owner, name)
            self._originals.append((owner, name, original))
            setattr(owner, name, wrap(original))
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()
        return False


def resident_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc; elsewhere the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory(contextlib.AbstractContextManager):
    """Peak memory (MiB) while the context is open: CUDA memory allocated on a GPU,
    else the process's resident memory, sampled every 5 ms by a thread."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = 0.0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak_mib = max(self.peak_mib, resident_mib())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mib = resident_mib()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = max(self.peak_mib, resident_mib())
        return False
