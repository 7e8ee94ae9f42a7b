"""Interpretation methods: the ``Explainer`` contract, the registry, one module per family.

Importing this package registers every built-in method (in the paper's table order).
"""
from methods import gradient, l2i, gradcam, lmac, lmac_td, piq, perturbation, controls  # noqa: F401,I001  (registration side effects, in order)
from methods.base import Explainer, to_mask
from methods.registry import available_methods, build_explainer, build_explainers, register

__all__ = ["Explainer", "available_methods", "build_explainer", "build_explainers", "register", "to_mask"]
