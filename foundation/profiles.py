"""Model sizes and training schedules: the paper's, and a CPU profile of the same code.

``paper``: CNN14 at width 64 (64…2048 channels, embedding 2048, ≈ 75 M parameters)
and the L-MAC decoder at width 2048 (≈ 237 M parameters), 200 epochs (protocol
§2, §4); GPU only. ``cpu``: the same architectures at width 8 (8…256 channels,
1.2 M parameters) and a width-64 decoder, with schedules that fit a 2-core machine
(§9): L-MAC's L1 weight is the one ``run_benchmark.py select-lmac-l1`` chose on the
validation part (``results/lmac-l1-selection-cpu``), trained 30 epochs at lr 1e-3.
PIQ (``piq_*``): the recipe's width-256 decoder, 200 epochs at lr 2e-4 on the paper profile;
width 16, 20 epochs at lr 1e-2 on the CPU profile (of 1e-3 and 1e-2, the lower BCE after 16 steps
on 32 training clips; docs/methods.md, PIQ).
``tiny``: for tests only.
"""
from __future__ import annotations

PROFILES: dict[str, dict] = {
    "paper": dict(
        classifier_width=64, classifier_epochs=200, classifier_lr=1e-3, batch_size=16,
        lmac_width=2048, lmac_epochs=200, lmac_lr=2e-4, lmac_lambda_l1=0.4, lmac_ft_epochs=50, l2i_epochs=200,
        piq_width=256, piq_epochs=200, piq_lr=2e-4,
        lmactd_epochs=200, lmactd_lr=2e-4, lmactd_batch_size=2, lmactd_sizes=dict(
            channels=256, width=2048, d_model=256, layers=2, intra_layers=4, inter_layers=2, intra_heads=4,
            inter_heads=8, d_ffn=256, chunk=250),
    ),
    "cpu": dict(
        classifier_width=8, classifier_epochs=80, classifier_lr=1e-3, batch_size=16,
        lmac_width=64, lmac_epochs=30, lmac_lr=1e-3, lmac_lambda_l1=0.4, lmac_ft_epochs=10, l2i_epochs=20,
        piq_width=16, piq_epochs=20, piq_lr=1e-2,
        lmactd_epochs=8, lmactd_lr=1e-3, lmactd_batch_size=8, lmactd_sizes=dict(
            channels=256, width=64, d_model=32, layers=1, intra_layers=1, inter_layers=1, intra_heads=4,
            inter_heads=4, d_ffn=64, chunk=250),
    ),
    "tiny": dict(
        classifier_width=2, classifier_epochs=2, classifier_lr=1e-3, batch_size=16,
        lmac_width=8, lmac_epochs=1, lmac_lr=1e-3, lmac_lambda_l1=1.6, lmac_ft_epochs=1, l2i_epochs=1,
        piq_width=4, piq_epochs=1, piq_lr=1e-3,
        lmactd_epochs=1, lmactd_lr=1e-3, lmactd_batch_size=8, lmactd_sizes=dict(
            channels=16, width=32, d_model=16, layers=1, intra_layers=1, inter_layers=1, intra_heads=2,
            inter_heads=2, d_ffn=32, chunk=250),
    ),
}


def default_profile(device: str) -> str:
    """``paper`` on a GPU, ``cpu`` otherwise."""
    return "paper" if str(device).startswith("cuda") else "cpu"
