"""The shared foundation, below ``classifiers/``, ``methods/`` and ``metrics/``: the signal front-end,
profiles, numeric precision, distributed helpers, files written safely, provenance and the model
cache. It imports nothing of the packages above it (``datasets/`` sits beside it), so every import
arrow runs one way: foundation ← classifiers, methods, metrics ← harness (``benchmark/``) ← commands.
"""
