"""The commands of ``run_benchmark.py`` around the core path, one module each: ``bench``, ``explain``,
``select-lmac-l1``, ``sanity``, ``report``, ``listening-results``, ``reference-models``, ``rankings`` and the
``--seeds`` mode of the run (``benchmark.cli`` dispatches to them)."""
