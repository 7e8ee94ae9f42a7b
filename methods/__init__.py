"""Interpretation methods: the ``Explainer`` contract, the registry, one module per family.

Importing this package registers every built-in method.
"""
from methods import all_ones, lmac, saliency  # noqa: F401  (registration side effects)
from methods.base import Explainer, available_methods, build_explainer, register, to_mask

__all__ = ["Explainer", "available_methods", "build_explainer", "register", "to_mask"]
