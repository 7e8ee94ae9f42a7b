"""The figure of a run (``figure.png``): each metric's mean and 95 % CI per method and
domain, and, with ``--curves``, the mean insertion and deletion curves per method."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from foundation.frontend import DOMAINS  # noqa: E402
from metrics import CURVE_FRACTIONS, arrow, curve_columns, table_columns  # noqa: E402


def plot_run(table: pd.DataFrame, per_sample: pd.DataFrame, title: str, path: Path) -> None:
    """Write the run's figure to ``path`` (PNG).

    Top: one panel per metric column of ``table`` (``tables.summarise``'s), methods on the y axis,
    the mean as a dot and the confidence interval as a bar, one colour per domain. Below, when
    ``per_sample`` holds the curves: per domain, the mean insertion and deletion curves of each
    method (p of the explained class against the share k of bins kept or removed, log axis).
    """
    metrics = [m for m in table_columns() if m in table]
    domains = list(dict.fromkeys(table["domain"]))
    methods = list(dict.fromkeys(table["method"]))
    curves = "Ins-AUC" in per_sample and per_sample["Ins-AUC"].notna().any()
    columns = 4
    metric_rows = -(-len(metrics) // columns)
    curve_rows = len(domains) if curves else 0
    figure = plt.figure(figsize=(4 * columns, 0.3 * len(methods) * metric_rows + 3.2 * curve_rows + 1.5))
    grid = figure.add_gridspec(metric_rows + curve_rows, columns,
                               height_ratios=[0.3 * len(methods) + 0.6] * metric_rows + [3] * curve_rows)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # domains
    method_colours = plt.get_cmap("tab20").colors  # up to 20 methods on a curve panel
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(grid[index // columns, index % columns])
        for d, domain in enumerate(domains):
            rows = table[(table["domain"] == domain) & table[metric].notna()]
            y = [methods.index(m) + 0.2 * (d - (len(domains) - 1) / 2) for m in rows["method"]]
            error = [(rows[metric] - rows[f"{metric}_ci_low"]).clip(lower=0),  # ±1e-15 when all values are equal
                     (rows[f"{metric}_ci_high"] - rows[metric]).clip(lower=0)]  # but for rounding
            axes.errorbar(rows[metric], y, xerr=error, fmt="o", ms=3, capsize=2, color=colours[d % len(colours)],
                          label=domain)
        axes.set_yticks(range(len(methods)), methods if index % columns == 0 else [""] * len(methods), fontsize=7)
        axes.invert_yaxis()
        axes.set_title(f"{metric} {arrow(metric)}".strip(), fontsize=9)
        axes.tick_params(axis="x", labelsize=7)
        axes.grid(axis="x", alpha=0.3)
    figure.axes[0].legend(fontsize=7, loc="best")
    by_label = {DOMAINS[name].label: name for name in DOMAINS}
    for d, domain in enumerate(domains if curves else []):
        in_domain = per_sample[per_sample["domain"] == by_label.get(domain, domain)]
        for k, (kind, name) in enumerate((("Ins", "insertion ↑"), ("Del", "deletion ↓"))):
            axes = figure.add_subplot(grid[metric_rows + d, 2 * k: 2 * k + 2])
            means = in_domain.groupby("method", sort=False)[curve_columns(kind)].mean()
            for method, curve in means.iterrows():
                axes.plot([100 * f for f in CURVE_FRACTIONS], curve.to_numpy(), marker="o", ms=3,
                          ls="--" if method in set(table.loc[table["control"], "method"]) else "-",
                          color=method_colours[methods.index(method) % len(method_colours)], label=method)
            axes.set_xscale("log")
            axes.set_xticks([100 * f for f in CURVE_FRACTIONS], [f"{100 * f:g}" for f in CURVE_FRACTIONS])
            axes.minorticks_off()
            axes.set_xlabel("share of bins kept (insertion) or removed (deletion), %", fontsize=8)
            axes.set_ylabel("p of the explained class", fontsize=8)
            axes.set_title(f"{domain}: {name}", fontsize=9)
            axes.grid(alpha=0.3)
            if k == 1:
                axes.legend(fontsize=6, ncol=2, loc="best")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_agreement(table: pd.DataFrame, title: str, path: Path) -> None:
    """Write the metric-agreement figure (``benchmark.agreement``'s table: domain, metric, truth, tau, ci_low,
    ci_high) to ``path``: one panel per domain, τ and its interval per metric, one marker per truth score."""
    domains = list(dict.fromkeys(table["domain"]))
    figure, axes = plt.subplots(1, max(1, len(domains)), figsize=(5 * max(1, len(domains)), 3.6), sharey=True,
                                squeeze=False)
    for axis, domain in zip(axes[0], domains):
        rows = table[table["domain"] == domain]
        metrics = list(dict.fromkeys(rows["metric"]))
        for k, (truth, marker) in enumerate(zip(dict.fromkeys(table["truth"]), "os^")):
            part = rows[rows["truth"] == truth].set_index("metric").reindex(metrics)
            y = np.arange(len(metrics)) + (k - 0.5) * 0.25
            axis.errorbar(part["tau"], y, xerr=[part["tau"] - part["ci_low"], part["ci_high"] - part["tau"]],
                          fmt=marker, capsize=3, label=f"vs {truth}")
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_yticks(np.arange(len(metrics)), metrics)
        axis.set_xlim(-1.05, 1.05)
        axis.set_xlabel("Kendall τ with the ground truth")
        axis.set_title(DOMAINS[domain].label, fontsize=9)
        axis.invert_yaxis()
    axes[0][0].legend(fontsize=8, loc="lower left")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
