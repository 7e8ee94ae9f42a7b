"""Faithfulness metrics: AI, AD, AG, FF, Fid-In (protocol §5).

All five come from one batched set of classifier outputs on three inputs:
the input X, the mask-in input M⊙X and the mask-out input (1−M)⊙X. They follow
the L-MAC paper (Paissan, Della Libera, Ravanelli, Subakan; ICML 2024), which
takes AI/AD/AG from Grad-CAM++ (Chattopadhay et al., 2018), FF from
Alvarez-Melis & Jaakkola (2018) and Fid-In from the L2I paper (Parekh et al.).
"""

import torch

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
