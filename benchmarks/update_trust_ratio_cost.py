"""What the trust ratio on the update costs: UpdateTrustRatioOptimizer against its inner Adam.

    python -m benchmarks.update_trust_ratio_cost [--models deep_mlp,resnet20] [--rounds N]
        [--smoke]

Three candidates in one TrainStep (``transform="none"``) on the same model and
batch: ``Adam``, ``UpdateTrustRatioOptimizer(Adam)`` (a copy of the weights, the
inner step, a restore and the rescaled assignment) and Keras's own ``Lamb``
(the ratio inside ``update_step``, no copy), interleaved round by round. Last
line: ``update_trust_ratio deep_mlp=<r> resnet20=<r>`` (wrapper time / Adam
time; the price of having no public update hook in Keras 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS
from tf_bng.wrappers import UpdateTrustRatioOptimizer

DEFAULT_ROUNDS = {"deep_mlp": (40, 2), "resnet20": (15, 1)}
ADAM, WRAPPED, LAMB = "Adam", "UpdateTrustRatio(Adam)", "keras Lamb"


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    args = cli.parse(p, argv)
    print(f"{'model':<9} {'candidate':<24} {HEADER_CELLS}")
    summary = {}
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        calls = {
            ADAM: workloads.step_call(workload, optimizer=keras.optimizers.Adam(1e-3)),
            WRAPPED: workloads.step_call(
                workload, optimizer=UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-3))
            ),
            LAMB: workloads.step_call(workload, optimizer=keras.optimizers.Lamb(1e-3)),
        }
        rounds, repeats = DEFAULT_ROUNDS.get(name, (10, 1))
        rows, _ = cli.compare(
            name,
            calls,
            ADAM,
            width=24,
            rounds=args.rounds or rounds,
            repeats=args.repeats or repeats,
        )
        summary[name] = rows[WRAPPED].ratio
    print("update_trust_ratio " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return summary


if __name__ == "__main__":
    main()
