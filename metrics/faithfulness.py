"""Faithfulness metrics: AI, AD, AG, FF, Fid-In (protocol §5).

All five come from one batched set of classifier outputs on three inputs:
the input X, the mask-in input M⊙X and the mask-out input (1−M)⊙X. They follow
the L-MAC paper (Paissan, Della Libera, Ravanelli, Subakan; ICML 2024), which
takes AI/AD/AG from Grad-CAM++ (Chattopadhay et al., 2018), FF from
Alvarez-Melis & Jaakkola (2018) and Fid-In from the L2I paper (Parekh et al.).
"""

import torch

from metrics.base import Metric, MetricInputs, register_metric

_TENSOR_KEYS = ("logits", "logits_in", "logits_out")


def _check_inputs(logits, logits_in, logits_out, target):
    tensors = dict(zip(_TENSOR_KEYS, (logits, logits_in, logits_out)))
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a (B, C) tensor, got {getattr(t, 'shape', type(t))}")
        if not torch.is_floating_point(t):
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if t.shape != logits.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logits has {tuple(logits.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    batch, n_classes = logits.shape
    if batch == 0:
        raise ValueError("empty batch")
    if not isinstance(target, torch.Tensor) or target.shape != (batch,):
        raise ValueError(f"target must be a ({batch},) tensor, got {getattr(target, 'shape', type(target))}")
    if target.dtype != torch.long:
        raise ValueError(f"target must be torch.long, got {target.dtype}")
    if ((target < 0) | (target >= n_classes)).any():
        raise ValueError(f"target outside [0, {n_classes})")


def faithfulness_scores(
    logits: torch.Tensor,
    logits_in: torch.Tensor,
    logits_out: torch.Tensor,
    target: torch.Tensor,
    ad_softmax_twice: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-sample AI, AD, AG, FF and Fid-In (protocol §5).

    Args:
        logits: (B, C) float classifier logits on the input X.
        logits_in: (B, C) float logits on the mask-in input M⊙X.
        logits_out: (B, C) float logits on the mask-out input (1−M)⊙X.
        target: (B,) torch.long, the explained class c for each sample; in the
            benchmark this is the prediction on X (argmax of ``logits``), but
            the function does not enforce that.
        ad_softmax_twice: if True (default) AD uses q = softmax(p), i.e. softmax
            applied twice to the logits, as the published L-MAC code does; this
            bounds AD by 100·(1 − 1/e) ≈ 63.2 for any C (approached as p_c → 1
            and p_in → one-hot on another class).
            If False, AD uses p itself (the textbook Grad-CAM++ definition).

    Returns:
        dict with keys "AI", "AD", "AG", "FF", "Fid-In", each a (B,) float64
        tensor on the logits' device. With p = softmax(logits),
        p_in = softmax(logits_in), p_out = softmax(logits_out):

        - "AI" = 100·1[p_in_c > p_c], in {0, 100}.
        - "AD" = 100·max(0, q_c − q_in_c)/q_c, in [0, 100]
          (q = softmax(p) or p, see ``ad_softmax_twice``).
        - "AG" = 100·max(0, p_in_c − p_c)/(1 − p_c), in [0, 100]. When p_c
          is exactly 1 in float64 (logit margin ≳ 37), no gain is possible
          (the numerator is 0 too), so AG is defined as 0 rather than 0/0.
        - "FF" = p_c − p_out_c, a probability difference in [−1, 1] (not ×100).
        - "Fid-In" = 1[argmax p_in == c], in {0, 1}; ties in p_in go to the
          lowest class index (torch.argmax).

        Probabilities are computed in float64. The single-softmax AD guards
        p_c == 0 (underflow, only possible when c is not the prediction) the
        same way: AD = 0, its numerator being 0 as well.

    Raises:
        ValueError: if the logits are not equal-shaped 2-D float tensors, hold
            NaN/inf, the batch is empty, or ``target`` is not a (B,) long
            tensor of valid class indices.
    """
    _check_inputs(logits, logits_in, logits_out, target)
    idx = target[:, None]
    p = torch.softmax(logits.double(), dim=1)
    p_in = torch.softmax(logits_in.double(), dim=1)
    p_out = torch.softmax(logits_out.double(), dim=1)
    p_c = p.gather(1, idx)[:, 0]
    p_in_c = p_in.gather(1, idx)[:, 0]
    p_out_c = p_out.gather(1, idx)[:, 0]

    q, q_in = (torch.softmax(p, dim=1), torch.softmax(p_in, dim=1)) if ad_softmax_twice else (p, p_in)
    q_c = q.gather(1, idx)[:, 0]
    q_in_c = q_in.gather(1, idx)[:, 0]

    drop = (q_c - q_in_c).clamp(min=0)
    gain = (p_in_c - p_c).clamp(min=0)
    headroom = 1 - p_c
    return {
        "AI": 100 * (p_in_c > p_c).double(),
        "AD": torch.where(q_c > 0, 100 * drop / q_c.clamp(min=torch.finfo(torch.float64).tiny), 0.0),
        "AG": torch.where(headroom > 0, 100 * gain / headroom.clamp(min=torch.finfo(torch.float64).tiny), 0.0),
        "FF": p_c - p_out_c,
        "Fid-In": (p_in.argmax(dim=1) == target).double(),
    }


def binary_margins(logits: torch.Tensor, logits_in: torch.Tensor) -> dict[str, torch.Tensor]:
    """How far each binary metric is from flipping, for comparing runs on two machines: a row's AI or
    Fid-In may differ between them only where its margin is within the rounding of the passes.

    Args:
        logits, logits_in: (B, C) logits of the unmasked and the mask-in pass; c = argmax of ``logits``.
    Returns:
        "AI-margin": p_in_c − p_c; "Fid-In-margin": p_in_c − max_{k≠c} p_in_k; (B,) float64 in [−1, 1]
        (softmax in float64, as ``faithfulness_scores``). AI = 100 iff AI-margin > 0; Fid-In = 1 iff
        Fid-In-margin > 0 (or = 0 with c first among the tied classes).
    """
    p, p_in = logits.double().softmax(1), logits_in.double().softmax(1)
    target = logits.argmax(1, keepdim=True)
    p_in_c = p_in.gather(1, target)[:, 0]
    others = p_in.scatter(1, target, float("-inf")).amax(1)
    return {"AI-margin": p_in_c - p.gather(1, target)[:, 0], "Fid-In-margin": p_in_c - others}


def _one(name: str):
    def compute(inputs: MetricInputs) -> torch.Tensor:
        return faithfulness_scores(inputs.logits, inputs.logits_in, inputs.logits_out, inputs.target,
                                   inputs.ad_softmax_twice)[name]
    return compute


def _margin(name: str):
    return lambda inputs: binary_margins(inputs.logits, inputs.logits_in)[name]


PAPER = "L-MAC paper §4.1; docs/protocol.md §5"
for _metric in (
    Metric("AI", True, "Average Increase: 100·1[p_in_c > p_c], in {0, 100}", _one("AI"), PAPER, digits=2),
    Metric("AD", False, "Average Drop: 100·max(0, q_c − q_in_c)/q_c, q = softmax(p) by default (published code) or "
                        "p; in [0, 100]", _one("AD"), PAPER + ", §7 (the double softmax)", digits=2),
    Metric("AG", True, "Average Gain: 100·max(0, p_in_c − p_c)/(1 − p_c), in [0, 100]", _one("AG"), PAPER, digits=2),
    Metric("FF", True, "Faithfulness: p_c − p_out_c, in [−1, 1]", _one("FF"), PAPER, digits=2),
    Metric("Fid-In", True, "Input Fidelity: 1[argmax p_in = c], in {0, 1}", _one("Fid-In"), PAPER, digits=2),
    Metric("AI-margin", None, "p_in_c − p_c: how far AI is from flipping, in [−1, 1]", _margin("AI-margin"),
           "docs/reference-models.md", column="per-sample"),
    Metric("Fid-In-margin", None, "p_in_c − max_{k≠c} p_in_k: how far Fid-In is from flipping, in [−1, 1]",
           _margin("Fid-In-margin"), "docs/reference-models.md", column="per-sample"),
):
    register_metric(_metric)
