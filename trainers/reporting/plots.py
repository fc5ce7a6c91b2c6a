"""The report's PNG figures (matplotlib's object API: no pyplot, no global backend switch).

Colour = base optimizer (or learning rate in the quadratic sweep), line
style = transform: dashed plain, solid NG, dash-dot NGadap, dotted CLIP.
Trained networks: the line is the median over seeds, the shaded band spans
the seeds' min and max.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .experiments import TRANSFORM_LABELS, Section, Variant
from .findings import CHANCE_LOSS, median_block_norms, quadratic_gaps, single_run
from .runs import RunGroup, curve_band

__all__ = ["plot_losses", "plot_figure1", "plot_quadratic", "plot_gradient_norms"]

_OPTIMIZER_COLORS = {
    "momentum": "tab:red",
    "nesterov": "tab:red",
    "adagrad": "tab:green",
    "adam": "tab:blue",
}
_TRANSFORM_STYLES = {"none": "--", "ng": "-", "ng_adap": "-.", "clip": ":"}
_TRANSFORM_COLORS = {
    "none": "0.45",
    "ng": "tab:blue",
    "ng_adap": "tab:orange",
    "clip": "tab:purple",
}
_SPLITS = (("train", "train loss"), ("eval", "test loss"))


def _figure(rows: int, cols: int, *, width: float = 4.0, height: float = 3.0, **kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols + 1.6, height * rows + 0.4), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def _save(fig, ax, path: str, title: str) -> None:
    """Title, one legend for the figure (from ``ax``'s lines) outside on the right, PNG."""
    fig.suptitle(title)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.savefig(path, dpi=100)


def _legend_label(variant: Variant, color_by: str) -> str:
    if color_by == "transform":  # columns of one optimizer each: name the transform only
        return TRANSFORM_LABELS.get(variant.transform) or "plain"
    return variant.label


def plot_losses(
    columns: Sequence[tuple[str, Sequence[Variant]]],
    results: Mapping[str, RunGroup],
    path: str,
    title: str,
    *,
    color_by: str = "optimizer",
) -> None:
    """Rows train / test loss vs epoch; one column per ``(title, variants)`` (any classifier runs).

    Median over seeds, shaded min–max band. ``color_by="transform"`` colours
    by transform (for columns of one optimizer each).
    """
    palette = _TRANSFORM_COLORS if color_by == "transform" else _OPTIMIZER_COLORS
    fig, axes = _figure(2, len(columns), sharex="col", sharey="row")
    for col, (column_title, variants) in enumerate(columns):
        for row, (split, ylabel) in enumerate(_SPLITS):
            ax = axes[row][col]
            for variant in variants:
                xs, median, low, high = curve_band(results[variant.name], split, "loss")
                color = palette.get(variant.value(color_by), "tab:gray")
                ax.plot(
                    xs,
                    median,
                    label=_legend_label(variant, color_by),
                    color=color,
                    linestyle=_TRANSFORM_STYLES.get(variant.transform, "-"),
                )
                if len(results[variant.name].runs) > 1:
                    ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
            ax.axhline(CHANCE_LOSS, color="0.6", linewidth=0.8, linestyle=":")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(column_title)
            else:
                ax.set_xlabel("epoch")
            if col == 0:
                ax.set_ylabel(ylabel)
    _save(fig, axes[0][-1], path, title)


def plot_figure1(section: Section, results: Mapping[str, RunGroup], path: str, title: str) -> None:
    """The paper's Figure 1 layout: one column per depth, train on top, test below."""
    depths = sorted({v.value("depth") for v in section.variants})
    columns = [
        (f"depth {d}", [v for v in section.variants if v.value("depth") == d]) for d in depths
    ]
    plot_losses(columns, results, path, title)


def plot_quadratic(
    section: Section, results: Mapping[str, RunGroup], path: str, title: str
) -> None:
    """f − f* vs iteration, log scale; one panel per method, one line per learning rate.

    The y axis stops at 10 × the starting gap, so a diverging run (drawn
    dotted) does not flatten the others.
    """
    methods = list(dict.fromkeys(v.label for v in section.variants))
    rates = sorted({v.value("optimizer.learning_rate") for v in section.variants})
    from matplotlib import colormaps

    colors = colormaps["viridis"](np.linspace(0.0, 0.9, len(rates)))
    cols = 2 if len(methods) > 2 else len(methods)
    rows = -(-len(methods) // cols)
    fig, axes = _figure(rows, cols, sharex=True, sharey=True, height=3.2)
    start = []
    for ax, method in zip(axes.flat, methods):
        for variant in (v for v in section.variants if v.label == method):
            result = single_run(results[variant.name])
            steps, gaps = quadratic_gaps(result)
            if gaps.size and np.isfinite(gaps[0]):
                start.append(gaps[0])
            lr = variant.value("optimizer.learning_rate")
            diverged = not result.ok or not gaps.size or not np.isfinite(gaps[-1])
            shown = np.where(gaps > 0, gaps, np.nan)  # float32 noise can reach <= 0 at the optimum
            ax.plot(
                steps,
                shown,
                color=colors[rates.index(lr)],
                linestyle=":" if diverged else "-",
                label=f"lr {lr:g}",
            )
        ax.set_yscale("log")
        ax.set_title(method)
        ax.grid(alpha=0.3, which="both")
    if start:
        axes.flat[0].set_ylim(top=10 * max(start))
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    for row in axes:
        row[0].set_ylabel("f − f*")
    for ax in list(axes.flat)[len(methods) :]:
        ax.set_visible(False)
    _save(fig, axes.flat[0], path, title + " (dotted: diverged)")


def plot_gradient_norms(
    section: Section,
    results: Mapping[str, RunGroup],
    path: str,
    title: str,
    optimizer: str = "adam",
) -> None:
    """Block gradient norm (before the transform) vs layer, first logged step, plain optimizer.

    Per block, the median over seeds.
    """
    fig, axes = _figure(1, 1, width=6.0, height=3.6)
    ax = axes[0][0]
    for variant in section.variants:
        if variant.optimizer != optimizer or variant.transform != "none":
            continue
        _, norms = median_block_norms(results[variant.name])
        if not norms.size:
            continue
        ax.plot(
            np.arange(1, norms.size + 1),
            np.where(norms > 0, norms, np.nan),
            marker="o",
            markersize=3,
            label=f"depth {variant.value('depth')}",
        )
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layer (1 = input layer, last = output layer)")
    ax.set_ylabel("‖gradient of the layer‖₂")
    ax.grid(alpha=0.3, which="both")
    _save(fig, ax, path, title)
