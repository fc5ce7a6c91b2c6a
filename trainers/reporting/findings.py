"""Verdicts on the paper's claims, computed from the runs' numbers (never typed in).

Each claim gets a rule with explicit thresholds, stated in the report next to
the verdict, so a reader can check it against the tables. Trained networks
run over several seeds (a :class:`~.runs.RunGroup` per
variant): rankings use the medians over seeds, and a claim about one variant
"holds" only when it holds in every seed (the evidence gives median [min–max]
and how many seeds satisfy each threshold).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from .experiments import Section, Variant
from .runs import RunGroup, RunResult, curve, curve_band, is_finite_number
from .seeds import Spread, spread

__all__ = [
    "Finding",
    "CHANCE_LOSS",
    "STUCK_FRACTION",
    "LEARNED_FRACTION",
    "LEARNED_ACCURACY",
    "TIE_ACCURACY",
    "mean_train_loss",
    "mean_train_losses",
    "single_run",
    "figure1_findings",
    "convergence_budget_finding",
    "SEED_DEEP_MLP",
    "seed_comparison_findings",
    "quadratic_gaps",
    "quadratic_findings",
    "ranking_findings",
    "adaptive_findings",
    "first_block_norms",
    "median_block_norms",
    "gradient_norm_rows",
]

CHANCE_LOSS = math.log(10.0)  # cross-entropy of a uniform guess over 10 digits
STUCK_FRACTION = 0.95  # final train loss >= 0.95 ln 10: stuck at chance
LEARNED_FRACTION = 0.5  # final train loss <= 0.5 ln 10: converging
LEARNED_ACCURACY = 0.2  # twice the chance accuracy of 10 balanced classes
TIE_ACCURACY = 0.005  # test accuracies closer than this (5 of 1,000 digits) are a tie


@dataclasses.dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str  # "holds" | "partly holds" | "does not hold" | "undecided" | "observed"
    evidence: str


def _verdict(passed: int, total: int) -> str:
    if total and passed == total:
        return "holds"
    return "partly holds" if passed else "does not hold"


def mean_train_loss(result: RunResult) -> float:
    """Mean of the per-epoch train losses: the area under the training curve per epoch."""
    _, losses = curve(result, "train", "loss")
    return float(np.mean(losses)) if losses.size else math.nan


def mean_train_losses(group: RunGroup) -> Spread:
    """:func:`mean_train_loss` of each seed."""
    return group.map(mean_train_loss)


def single_run(group: RunGroup) -> RunResult:
    """The one run of a deterministic variant (the quadratic)."""
    return group.runs[0]


def _by(section: Section, results: Mapping[str, RunGroup], **match) -> RunGroup:
    for variant in section.variants:
        if all(variant.value(k) == v for k, v in match.items()):
            return results[variant.name]
    raise KeyError(f"No run with {match} in section {section.key}.")


def _depths(section: Section) -> list[int]:
    return sorted({v.value("depth") for v in section.variants})


def _optimizers(section: Section) -> list[str]:
    return list(dict.fromkeys(v.optimizer for v in section.variants))


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3g}"


def figure1_findings(section: Section, results: Mapping[str, RunGroup]) -> list[Finding]:
    """The paper's §4.1 claims: Adam stuck at the deepest net, NG's gain growing with depth.

    Preceded by the budget they are judged at: a claim judged before Adam+NG
    converges would be judging the budget, not the method.
    """
    findings = [convergence_budget_finding(section, results), _adam_stuck_finding(section, results)]
    if len(_depths(section)) > 1:
        findings.append(_gain_finding(section, results))
    findings.append(_adam_ng_best_finding(section, results))
    return findings


def convergence_budget_finding(section: Section, results: Mapping[str, RunGroup]) -> Finding:
    """Epochs until the Adam+NG median train loss is below the converging line, per depth."""
    learned_line = LEARNED_FRACTION * CHANCE_LOSS
    parts, run_epochs = [], 0.0
    for depth in _depths(section):
        group = _by(section, results, depth=depth, optimizer="adam", transform="ng")
        epochs, median, _, _ = curve_band(group, "train", "loss")
        run_epochs = max(run_epochs, float(epochs[-1]) if epochs.size else 0.0)
        below = np.flatnonzero(median <= learned_line)
        parts.append(
            f"depth {depth}: " + (f"{epochs[below[0]]:g}" if below.size else "not reached")
        )
    return Finding(
        claim=f"Budget: the depth claims below are judged after {run_epochs:g} epochs.",
        verdict="observed",
        evidence=(
            f"epochs until the Adam+NG median train loss over seeds is first ≤ {LEARNED_FRACTION} × "
            f"ln 10 = {learned_line:.3f} (converging): " + ", ".join(parts) + "."
        ),
    )


# The keras seed's notebook (mnist_mlp.ipynb): validation accuracy after epoch 1 and at the end.
SEED_DEEP_MLP = {"NAdam (max)": (0.711, 0.946), "NSGD (max)": (0.470, 0.772)}


def _accuracy_at(result: RunResult, epoch: float) -> float:
    epochs, accuracy = curve(result, "eval", "accuracy")
    at = np.flatnonzero(np.isclose(epochs, epoch, atol=0.5))
    return float(accuracy[at[0]]) if at.size else math.nan


def seed_comparison_findings(section: Section, results: Mapping[str, RunGroup]) -> list[Finding]:
    """The seed's own numbers beside ours: after the first phase and at the end."""
    findings = []
    for variant in section.variants:
        if variant.label not in SEED_DEEP_MLP:
            continue
        group = results[variant.name]
        config = variant.build_config()
        phase = float(config.schedule.boundaries[0])
        first, last = SEED_DEEP_MLP[variant.label]
        after_phase = spread(_accuracy_at(run, phase) for run in group.runs)
        end = group.spread("eval_accuracy")
        findings.append(
            Finding(
                claim=f"{variant.label}: test accuracy beside the seed's validation accuracy.",
                verdict="observed",
                evidence=(
                    f"after the first phase (lr 0.01, {phase:g} epochs): {after_phase.format()} "
                    f"over {_seeds(end)} (seed, after its epoch 1 of 469 steps: {first}); at the "
                    f"end ({config.train.epochs:g} epochs): {end.format()} (seed, after 30 epochs "
                    f"of full MNIST: {last})."
                ),
            )
        )
    return findings


def _seeds(spread: Spread) -> str:
    return f"{len(spread.values)} seed{'s' if len(spread.values) != 1 else ''}"


def _adam_stuck_finding(section: Section, results: Mapping[str, RunGroup]) -> Finding:
    deepest = _depths(section)[-1]
    adam = _by(section, results, depth=deepest, optimizer="adam", transform="none")
    adam_ng = _by(section, results, depth=deepest, optimizer="adam", transform="ng")
    plain, normalized = adam.spread("train_loss"), adam_ng.spread("train_loss")
    stuck_line, learned_line = STUCK_FRACTION * CHANCE_LOSS, LEARNED_FRACTION * CHANCE_LOSS
    is_stuck, learns = (lambda v: v >= stuck_line), (lambda v: v <= learned_line)
    if plain.all(is_stuck) and normalized.all(learns):
        verdict = "holds"
    elif is_stuck(plain.median) and not is_stuck(normalized.median):
        verdict = "partly holds"
    else:
        verdict = "does not hold"
    return Finding(
        claim=f"At depth {deepest}, Adam is stuck while Adam+NG converges.",
        verdict=verdict,
        evidence=(
            f"final train loss, median [min–max] over {_seeds(plain)}: Adam {plain.format()} "
            f"(stuck means ≥ {STUCK_FRACTION} × ln 10 = {stuck_line:.3f}: "
            f"{plain.count(is_stuck)} of {len(plain.values)} seeds), Adam+NG {normalized.format()} "
            f"(converging means ≤ {LEARNED_FRACTION} × ln 10 = {learned_line:.3f}: "
            f"{normalized.count(learns)} of {len(normalized.values)} seeds); test accuracy "
            f"{adam.spread('eval_accuracy').format()} vs {adam_ng.spread('eval_accuracy').format()}. "
            "Holds: every seed on its side of both lines; partly: on the medians, Adam stuck and "
            "Adam+NG below the stuck line."
        ),
    )


def _gain_finding(section: Section, results: Mapping[str, RunGroup]) -> Finding:
    depths, optimizers = _depths(section), _optimizers(section)
    growing, parts = 0, []
    for optimizer in optimizers:
        pairs = [
            (
                _by(section, results, depth=d, optimizer=optimizer, transform="none"),
                _by(section, results, depth=d, optimizer=optimizer, transform="ng"),
            )
            for d in depths
        ]
        gains = [
            mean_train_losses(plain).median - mean_train_losses(ng).median for plain, ng in pairs
        ]
        grows = all(b > a for a, b in zip(gains, gains[1:]))
        growing += grows
        parts.append(
            f"{pairs[0][0].variant.label}: "
            + ", ".join(_fmt(g) for g in gains)
            + (" (grows)" if grows else " (does not grow)")
        )
    return Finding(
        claim=f"NG's gain grows with depth ({', '.join(map(str, depths))}).",
        verdict=_verdict(growing, len(optimizers)),
        evidence=(
            "gain = median over seeds of the plain optimizer's mean train loss over the epochs "
            "(area under the training curve) minus the same median for its NG version, by depth: "
            + "; ".join(parts)
            + "."
        ),
    )


def _adam_ng_best_finding(section: Section, results: Mapping[str, RunGroup]) -> Finding:
    best_by_depth = []
    for depth in _depths(section):
        groups = [results[v.name] for v in section.variants if v.value("depth") == depth]
        best = min(groups, key=lambda g: _nan_last(g.metric("train_loss")))
        best_by_depth.append((depth, best.variant.label, best.metric("train_loss")))
    wins = sum(label == "Adam+NG" for _, label, _ in best_by_depth)
    return Finding(
        claim="Adam+NG is the best algorithm at every depth (lowest final train loss).",
        verdict=_verdict(wins, len(best_by_depth)),
        evidence="best median over seeds, by depth: "
        + ", ".join(f"{d}: {label} ({_fmt(loss)})" for d, label, loss in best_by_depth)
        + ".",
    )


def _nan_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def quadratic_gaps(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """``(iteration, f - f*)`` of one quadratic run, from the logged train suboptimality."""
    return curve(result, "train", "suboptimality", x="step")


def _diverged(result: RunResult) -> bool:
    _, gaps = quadratic_gaps(result)
    return not result.ok or gaps.size == 0 or not np.isfinite(gaps[-1]) or gaps[-1] >= gaps[0]


def quadratic_findings(section: Section, results: Mapping[str, RunGroup]) -> list[Finding]:
    """Which methods converge at which learning rates, and which is best at each (one run each)."""
    methods: dict[str, list[Variant]] = {}
    for variant in section.variants:
        methods.setdefault(variant.label, []).append(variant)
    findings = []
    for label, variants in methods.items():
        run = {v.name: single_run(results[v.name]) for v in variants}
        converged = [v for v in variants if not _diverged(run[v.name])]
        rates = lambda vs: ", ".join(f"{v.value('optimizer.learning_rate'):g}" for v in vs)  # noqa: E731
        diverged = [v for v in variants if v not in converged]
        best = min(variants, key=lambda v: _nan_last(_last_gap(run[v.name])))
        findings.append(
            Finding(
                claim=f"{label} decreases f − f* at every learning rate.",
                verdict=_verdict(len(converged), len(variants)),
                evidence=(
                    f"decreasing at lr {rates(converged) or 'none'}"
                    + (f"; diverged or not decreasing at lr {rates(diverged)}" if diverged else "")
                    + f"; best final f − f* {_fmt(_last_gap(run[best.name]))} at lr "
                    f"{best.value('optimizer.learning_rate'):g}."
                ),
            )
        )
    return findings


def _last_gap(result: RunResult) -> float:
    _, gaps = quadratic_gaps(result)
    return float(gaps[-1]) if gaps.size else math.nan


def ranking_findings(section: Section, results: Mapping[str, RunGroup]) -> list[Finding]:
    """Plain observations: which variant trains and tests best (medians over seeds)."""
    groups = [results[v.name] for v in section.variants]
    by_train = sorted(groups, key=lambda g: _nan_last(g.metric("train_loss")))
    by_test = sorted(groups, key=lambda g: _nan_last(-g.metric("eval_accuracy")))
    learns = lambda v: v >= LEARNED_ACCURACY  # noqa: E731
    learned = [g for g in groups if learns(g.metric("eval_accuracy"))]
    return [
        Finding(
            claim=f"Variants that learn (median final test accuracy ≥ {LEARNED_ACCURACY:g}, twice chance):",
            verdict="observed",
            evidence=(
                ", ".join(
                    f"{g.variant.label} ({g.spread('eval_accuracy').count(learns)} of {len(g.runs)} seeds)"
                    for g in learned
                )
                if learned
                else "none"
            )
            + f" of {len(groups)}.",
        ),
        Finding(
            claim="Ranking by final train loss (lowest median first; median [min–max] over seeds):",
            verdict="observed",
            evidence=", ".join(
                f"{g.variant.label} {g.spread('train_loss').format()}" for g in by_train
            ),
        ),
        Finding(
            claim="Ranking by final test accuracy (highest median first; median [min–max] over seeds):",
            verdict="observed",
            evidence=", ".join(
                f"{g.variant.label} {g.spread('eval_accuracy').format()}" for g in by_test
            ),
        ),
    ]


def adaptive_findings(section: Section, results: Mapping[str, RunGroup]) -> list[Finding]:
    """The paper's CIFAR claims (Tables 1-2), checked on the deepest MLP: NGadap best, CLIP worst.

    Ranked by the median test accuracy over seeds.
    """
    optimizers = _optimizers(section)
    adap_best, clip_worst, decided, summaries = 0, 0, 0, []
    for optimizer in optimizers:
        groups = {
            t: _by(section, results, optimizer=optimizer, transform=t)
            for t in ("ng", "ng_adap", "clip")
        }
        # Sort keys: lower is better; a failed run (NaN) counts as the worst.
        error = {t: _nan_last(-g.metric("eval_accuracy")) for t, g in groups.items()}
        summaries.append(
            ", ".join(
                f"{g.variant.label} {g.spread('eval_accuracy').format()}" for g in groups.values()
            )
        )
        if max(error.values()) - min(error.values()) < TIE_ACCURACY:
            continue  # all three equal (e.g. all at chance): no ranking to check
        decided += 1
        adap_best += min(error, key=error.get) == "ng_adap"
        clip_worst += max(error, key=error.get) == "clip"
    evidence = (
        "final test accuracy, median [min–max] over seeds: "
        + "; ".join(summaries)
        + f". Base optimizers where the three medians differ by at least {TIE_ACCURACY:g} (the "
        f"others are ties and not counted): {decided} of {len(optimizers)}."
    )
    return [
        Finding(
            claim="NGadap reaches the best test accuracy of NG / NGadap / CLIP (paper, CIFAR).",
            verdict=_verdict(adap_best, decided) if decided else "undecided",
            evidence=evidence,
        ),
        Finding(
            claim="CLIP reaches the worst test accuracy of NG / NGadap / CLIP (paper, CIFAR).",
            verdict=_verdict(clip_worst, decided) if decided else "undecided",
            evidence=evidence,
        ),
    ]


def first_block_norms(result: RunResult) -> tuple[float, np.ndarray]:
    """``(epoch, norms)``: the block gradient norms (before the transform) at the first log.

    Blocks are in model order (input layer first). Empty if nothing was logged.
    """
    for record in result.records:
        if record.get("split") == "train" and record.get("grad_norm"):
            values = record["grad_norm"].values()
            return float(record["epoch"]), np.array(
                [v if is_finite_number(v) else np.nan for v in values]
            )
    return math.nan, np.array([])


def median_block_norms(group: RunGroup) -> tuple[float, np.ndarray]:
    """:func:`first_block_norms`, per block the median over the group's seeds."""
    firsts = [first_block_norms(run) for run in group.runs]
    firsts = [(epoch, norms) for epoch, norms in firsts if norms.size]
    if not firsts or len({norms.size for _, norms in firsts}) != 1:
        return firsts[0] if firsts else (math.nan, np.array([]))
    return firsts[0][0], np.nanmedian(np.stack([norms for _, norms in firsts]), axis=0)


def gradient_norm_rows(
    section: Section, results: Mapping[str, RunGroup], optimizer: str = "adam"
) -> list[dict]:
    """Per depth, the plain optimizer's input- and output-layer gradient norms at the first log.

    The vanishing gradient the paper targets: the input layer's norm against
    the output layer's (per block, the median over seeds).
    """
    rows = []
    for depth in _depths(section):
        group = _by(section, results, depth=depth, optimizer=optimizer, transform="none")
        epoch, norms = median_block_norms(group)
        if norms.size:
            rows.append(
                dict(
                    depth=depth,
                    label=group.variant.label,
                    epoch=epoch,
                    blocks=norms.size,
                    first=float(norms[0]),
                    last=float(norms[-1]),
                    smallest=float(np.nanmin(norms)),
                    seeds=len(group.runs),
                )
            )
    return rows
