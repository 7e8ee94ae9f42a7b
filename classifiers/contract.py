"""The classifier contract checked before any work: one pass of the classifier on a real clip, and every
promise of the contract (``classifiers.base``) that the chosen methods rely on, refused with the item
named and the shape observed, before anything trains or is evaluated.

How large a representation may be: L-MAC's and L2I's ``GridDecoder`` works on the largest
representation's grid at up to 8 × its time and 8 × its frequency steps, so its cost grows with
T_i · F_i. Grids of a few thousand cells (CNN14's 53 × 10, the AST's 31 × 8, a wav2vec2 model's
249 × 1) train in minutes on a CPU; a grid of tens of thousands of cells (a representation on every
few samples of the waveform) makes one tiny-profile epoch take minutes. ``LARGE_GRID`` cells and more
are reported before training (docs: Classifiers, "The contract").
"""
from __future__ import annotations

import torch

from classifiers.base import Classifier

LARGE_GRID = 20_000
"""Cells (T_i · F_i) of a representation from which decoder training is slow (module docstring)."""


class ContractError(ValueError):
    """A promise of the classifier contract broken; the message names the item, the shape observed and the fix."""


def check_contract(classifier: Classifier, waveform: torch.Tensor, classes: int, needs: set[str],
                   flag: str) -> list[str]:
    """Run ``classifier`` (eval mode) once on a real clip and check what the chosen methods rely on.

    Always: ``features`` (1, T, F) finite; logits (1, ``classes``) finite. With "gradients" in ``needs``
    (any method other than the controls): the explained logit's gradient reaches the features, finite
    and not all zero. With "representations": each representation (1, C_i, T_i, F_i), finite. With
    "cam_layer": the output of ``cam_layer()`` (1, C, T', F').

    Args:
        waveform: (1, N) a real clip at 16 kHz; classes: the dataset's class count; needs: what the
            methods require (``Explainer.requires`` items and "gradients"); flag: names the classifier.
    Returns:
        notes for the run's log (a representation grid of ``LARGE_GRID`` cells or more).
    Raises:
        ContractError: the first promise broken, with the contract item and the observed shape.
    """
    classifier.eval()
    seen: dict[str, torch.Tensor] = {}
    layer = classifier.cam_layer() if "cam_layer" in needs else None
    hook = None if layer is None else layer.register_forward_hook(lambda m, a, out: seen.update(cam=out))
    try:
        with torch.enable_grad():
            features = classifier.features(waveform).detach().requires_grad_()
            _expect(flag, "features(waveform) (B, T, F)", features, 3)
            result = classifier.forward_with_representations(features)
    finally:
        if hook is not None:
            hook.remove()
    logits = result.logits
    if tuple(logits.shape) != (1, classes):
        raise ContractError(f"{flag}: contract item forward_with_representations(features).logits (B, classes): "
                            f"observed {tuple(logits.shape)} for one clip, expected (1, {classes}); build its output "
                            "layer with len(class_names) units")
    _finite(flag, "logits", logits)
    notes = []
    if "representations" in needs:
        for i, block in enumerate(result.representations):
            _expect(flag, f"representation {i} (B, C, T, F)", block, 4)
            _finite(flag, f"representation {i}", block)
            if block.shape[2] * block.shape[3] >= LARGE_GRID:
                notes.append(f"representation {i} is a {block.shape[2]} × {block.shape[3]} grid: L-MAC and L2I "
                             "decoders train slowly on grids this large (docs: Classifiers, \"The contract\")")
    if "cam_layer" in needs:
        if not isinstance(seen.get("cam"), torch.Tensor):
            raise ContractError(f"{flag}: contract item cam_layer(): the module was not run by a forward pass (or "
                                "gave no tensor); return a module the forward pass calls, on a (B, C, T', F') grid")
        _expect(flag, "cam_layer() output (B, C, T', F')", seen["cam"], 4)
    if "gradients" in needs:
        if logits.requires_grad:
            logits[0, logits[0].argmax()].backward()
        grad = features.grad
        if grad is None or not torch.isfinite(grad).all() or not grad.abs().sum():
            state = "none" if grad is None else "not finite" if not torch.isfinite(grad).all() else "all zero"
            raise ContractError(f"{flag}: contract item: gradients of the logits reach the features; observed "
                                f"{state}; compute the features and the model in torch without detach() or no_grad")
    return notes


def _expect(flag: str, item: str, tensor: object, dims: int) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != dims:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ContractError(f"{flag}: contract item {item}: observed {shape} for one clip, a {dims}-D tensor "
                            "expected (docs: Classifiers, \"The contract\")")


def _finite(flag: str, item: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ContractError(f"{flag} gives NaN or infinite {item} on a real clip; check the classifier's weights and "
                            "its features (every explanation of it would be invalid)")
