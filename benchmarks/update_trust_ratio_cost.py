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
from tf_bng.wrappers import UpdateTrustRatioOptimizer

DEFAULT_ROUNDS = {"deep_mlp": (40, 2), "resnet20": (15, 1)}
ADAM, WRAPPED, LAMB = "Adam", "UpdateTrustRatio(Adam)", "keras Lamb"


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    args = cli.parse(p, argv)

    def calls_for(workload):
        wrapped = UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-3))
        return {
            ADAM: workloads.step_call(workload, optimizer=keras.optimizers.Adam(1e-3)),
            WRAPPED: workloads.step_call(workload, optimizer=wrapped),
            LAMB: workloads.step_call(workload, optimizer=keras.optimizers.Lamb(1e-3)),
        }

    return cli.headline_per_model(
        args,
        calls_for,
        reference=ADAM,
        candidate=WRAPPED,
        headline="update_trust_ratio",
        default_rounds=DEFAULT_ROUNDS,
        width=24,
    )


if __name__ == "__main__":
    main()
