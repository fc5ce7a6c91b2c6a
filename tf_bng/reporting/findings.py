"""Verdicts on the paper's claims, computed from the runs' numbers (never typed in).

Each claim gets a rule with explicit thresholds, stated in the report next to
the verdict, so a reader can check it against the tables.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from tf_bng.reporting.experiments import Section, Variant
from tf_bng.reporting.runs import RunResult, curve, is_finite_number

__all__ = [
    "Finding",
    "CHANCE_LOSS",
    "STUCK_FRACTION",
    "LEARNED_FRACTION",
    "LEARNED_ACCURACY",
    "TIE_ACCURACY",
    "mean_train_loss",
    "figure1_findings",
    "quadratic_gaps",
    "quadratic_findings",
    "ranking_findings",
    "adaptive_findings",
    "first_block_norms",
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


def _by(section: Section, results: Mapping[str, RunResult], **match) -> RunResult:
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


def figure1_findings(section: Section, results: Mapping[str, RunResult]) -> list[Finding]:
    """The paper's §4.1 claims: Adam stuck at the deepest net, NG's gain growing with depth."""
    findings = [_adam_stuck_finding(section, results)]
    if len(_depths(section)) > 1:
        findings.append(_gain_finding(section, results))
    findings.append(_adam_ng_best_finding(section, results))
    return findings


def _adam_stuck_finding(section: Section, results: Mapping[str, RunResult]) -> Finding:
    deepest = _depths(section)[-1]
    adam = _by(section, results, depth=deepest, optimizer="adam", transform="none")
    adam_ng = _by(section, results, depth=deepest, optimizer="adam", transform="ng")
    plain, normalized = adam.metric("train_loss"), adam_ng.metric("train_loss")
    stuck = plain >= STUCK_FRACTION * CHANCE_LOSS
    converges = normalized <= LEARNED_FRACTION * CHANCE_LOSS
    verdict = "holds" if stuck and converges else (
        "partly holds" if stuck and normalized < plain else "does not hold"
    )
    return Finding(
        claim=f"At depth {deepest}, Adam is stuck while Adam+NG converges.",
        verdict=verdict,
        evidence=(
            f"final train loss Adam {_fmt(plain)} (stuck means ≥ {STUCK_FRACTION} × ln 10 = "
            f"{STUCK_FRACTION * CHANCE_LOSS:.3f}: {'yes' if stuck else 'no'}), Adam+NG "
            f"{_fmt(normalized)} (converging means ≤ {LEARNED_FRACTION} × ln 10 = "
            f"{LEARNED_FRACTION * CHANCE_LOSS:.3f}: {'yes' if converges else 'no'}); test accuracy "
            f"{_fmt(adam.metric('eval_accuracy'))} vs {_fmt(adam_ng.metric('eval_accuracy'))}."
        ),
    )


def _gain_finding(section: Section, results: Mapping[str, RunResult]) -> Finding:
    depths, optimizers = _depths(section), _optimizers(section)
    growing, parts = 0, []
    for optimizer in optimizers:
        pairs = [
            (_by(section, results, depth=d, optimizer=optimizer, transform="none"),
             _by(section, results, depth=d, optimizer=optimizer, transform="ng"))
            for d in depths
        ]
        gains = [mean_train_loss(plain) - mean_train_loss(ng) for plain, ng in pairs]
        grows = all(b > a for a, b in zip(gains, gains[1:]))
        growing += grows
        parts.append(
            f"{pairs[0][0].variant.label}: " + ", ".join(_fmt(g) for g in gains)
            + (" (grows)" if grows else " (does not grow)")
        )
    return Finding(
        claim=f"NG's gain grows with depth ({', '.join(map(str, depths))}).",
        verdict=_verdict(growing, len(optimizers)),
        evidence=(
            "gain = mean train loss over the epochs (area under the training curve) of the "
            "plain optimizer minus that of its NG version, by depth: " + "; ".join(parts) + "."
        ),
    )


def _adam_ng_best_finding(section: Section, results: Mapping[str, RunResult]) -> Finding:
    best_by_depth = []
    for depth in _depths(section):
        runs = [results[v.name] for v in section.variants if v.value("depth") == depth]
        best = min(runs, key=lambda r: _nan_last(r.metric("train_loss")))
        best_by_depth.append((depth, best.variant.label))
    wins = sum(label == "Adam+NG" for _, label in best_by_depth)
    return Finding(
        claim="Adam+NG is the best algorithm at every depth (lowest final train loss).",
        verdict=_verdict(wins, len(best_by_depth)),
        evidence="best by depth: " + ", ".join(f"{d}: {label}" for d, label in best_by_depth) + ".",
    )


def _nan_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def quadratic_gaps(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """``(iteration, f - f*)`` of one quadratic run, from the logged train suboptimality."""
    return curve(result, "train", "suboptimality", x="step")


def _diverged(result: RunResult) -> bool:
    _, gaps = quadratic_gaps(result)
    return not result.ok or gaps.size == 0 or not np.isfinite(gaps[-1]) or gaps[-1] >= gaps[0]


def quadratic_findings(section: Section, results: Mapping[str, RunResult]) -> list[Finding]:
    """Which methods converge at which learning rates, and which is best at each."""
    methods: dict[str, list[Variant]] = {}
    for variant in section.variants:
        methods.setdefault(variant.label, []).append(variant)
    findings = []
    for label, variants in methods.items():
        converged = [v for v in variants if not _diverged(results[v.name])]
        rates = lambda vs: ", ".join(f"{v.value('optimizer.learning_rate'):g}" for v in vs)  # noqa: E731
        diverged = [v for v in variants if v not in converged]
        best = min(variants, key=lambda v: _nan_last(_last_gap(results[v.name])))
        findings.append(Finding(
            claim=f"{label} decreases f − f* at every learning rate.",
            verdict=_verdict(len(converged), len(variants)),
            evidence=(
                f"decreasing at lr {rates(converged) or 'none'}"
                + (f"; diverged or not decreasing at lr {rates(diverged)}" if diverged else "")
                + f"; best final f − f* {_fmt(_last_gap(results[best.name]))} at lr "
                f"{best.value('optimizer.learning_rate'):g}."
            ),
        ))
    return findings


def _last_gap(result: RunResult) -> float:
    _, gaps = quadratic_gaps(result)
    return float(gaps[-1]) if gaps.size else math.nan


def ranking_findings(section: Section, results: Mapping[str, RunResult]) -> list[Finding]:
    """Plain observations: which variant trains and tests best."""
    runs = [results[v.name] for v in section.variants]
    by_train = sorted(runs, key=lambda r: _nan_last(r.metric("train_loss")))
    by_test = sorted(runs, key=lambda r: _nan_last(-r.metric("eval_accuracy")))
    learned = [r for r in runs if r.metric("eval_accuracy") >= LEARNED_ACCURACY]
    return [
        Finding(
            claim=f"Variants that learn (final test accuracy ≥ {LEARNED_ACCURACY:g}, twice chance):",
            verdict="observed",
            evidence=(", ".join(r.variant.label for r in learned) if learned else "none")
            + f" of {len(runs)}.",
        ),
        Finding(
            claim="Ranking by final train loss (lowest first):",
            verdict="observed",
            evidence=", ".join(f"{r.variant.label} {_fmt(r.metric('train_loss'))}" for r in by_train),
        ),
        Finding(
            claim="Ranking by final test accuracy (highest first):",
            verdict="observed",
            evidence=", ".join(f"{r.variant.label} {_fmt(r.metric('eval_accuracy'))}" for r in by_test),
        ),
    ]


def adaptive_findings(section: Section, results: Mapping[str, RunResult]) -> list[Finding]:
    """The paper's CIFAR claims (Tables 1-2), checked on the deepest MLP: NGadap best, CLIP worst."""
    optimizers = _optimizers(section)
    adap_best, clip_worst, decided, summaries = 0, 0, 0, []
    for optimizer in optimizers:
        runs = {
            t: _by(section, results, optimizer=optimizer, transform=t)
            for t in ("ng", "ng_adap", "clip")
        }
        # Sort keys: lower is better; a failed run (NaN) counts as the worst.
        error = {t: _nan_last(-r.metric("eval_accuracy")) for t, r in runs.items()}
        summaries.append(
            ", ".join(f"{r.variant.label} {_fmt(r.metric('eval_accuracy'))}" for r in runs.values())
        )
        if max(error.values()) - min(error.values()) < TIE_ACCURACY:
            continue  # all three equal (e.g. all at chance): no ranking to check
        decided += 1
        adap_best += min(error, key=error.get) == "ng_adap"
        clip_worst += max(error, key=error.get) == "clip"
    evidence = (
        "final test accuracy: " + "; ".join(summaries) + f". Base optimizers where the three "
        f"differ by at least {TIE_ACCURACY:g} (the others are ties and not counted): {decided} of "
        f"{len(optimizers)}."
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
            return float(record["epoch"]), np.array([v if is_finite_number(v) else np.nan for v in values])
    return math.nan, np.array([])


def gradient_norm_rows(
    section: Section, results: Mapping[str, RunResult], optimizer: str = "adam"
) -> list[dict]:
    """Per depth, the plain optimizer's input- and output-layer gradient norms at the first log.

    The vanishing gradient the paper targets: the input layer's norm against
    the output layer's.
    """
    rows = []
    for depth in _depths(section):
        result = _by(section, results, depth=depth, optimizer=optimizer, transform="none")
        epoch, norms = first_block_norms(result)
        if norms.size:
            rows.append(dict(
                depth=depth, label=result.variant.label, epoch=epoch, blocks=norms.size,
                first=float(norms[0]), last=float(norms[-1]), smallest=float(np.nanmin(norms)),
            ))
    return rows
