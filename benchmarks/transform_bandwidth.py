"""The transform alone on ~25M parameters against one fused read+write pass.

    python -m benchmarks.transform_bandwidth [--rounds 15] [--repeats 2] [--smoke]

The gradients are random tensors shaped like ResNet-50's trainable variables
(``keras.applications.ResNet50(weights=None)``: 214 tensors, 25.6M float32,
102 MB). The reference ``g * 2`` is one multiply per tensor: every byte read
once and written once, the least any transform must do. ``ng`` (l2) reads every
gradient twice (the norm, then the scaling) and writes it once, so ~1.5x is the
floor; ``ng_adap`` also reads the variables (~2x). Each candidate is one
``tf.function`` taking the gradient list. Last line:
``bandwidth ng_layer=<ratio> params=<millions>M`` (target <= 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows
from tf_bng import BlockTransform, TransformConfig

REFERENCE = "g*2 (fused pass)"
CANDIDATES = (
    ("ng", "layer"),
    ("ng", "variable"),
    ("ng", "global"),
    ("clip", "variable"),
    ("ng_adap", "layer"),
)


def shaped_like_resnet50(smoke: bool) -> list:
    """Variables with the shapes and paths of ResNet-50's (or a tiny model's, for --smoke)."""
    if smoke:
        return list(workloads.build("resnet20", smoke=True).model.trainable_variables)
    return list(keras.applications.ResNet50(weights=None).trainable_variables)


def _transform_fn(variables, transform: str, blocks: str):
    block_transform = BlockTransform(TransformConfig(transform=transform, blocks=blocks))

    @tf.function
    def run(grads):
        return block_transform(grads, variables, with_norms=False)[0]

    return run


@tf.function
def _fused_pass(grads):
    return [g * 2.0 for g in grads]


def main(argv: Sequence[str] | None = None) -> dict:
    args = cli.parse(cli.parser(__doc__, rounds=15, repeats=2), argv)
    variables = shaped_like_resnet50(args.smoke)
    tf.random.set_seed(0)
    grads = [tf.random.normal(v.shape, dtype=v.dtype) for v in variables]
    params = sum(int(g.shape.num_elements()) for g in grads)
    megabytes = sum(g.shape.num_elements() * g.dtype.size for g in grads) / 1e6

    calls = {REFERENCE: lambda: _fused_pass(grads)}
    for transform, blocks in CANDIDATES:
        fn = _transform_fn(variables, transform, blocks)
        calls[f"{transform}/{blocks}"] = lambda fn=fn: fn(grads)
    times = interleaved(calls, rounds=args.rounds, repeats=args.repeats)

    print(f"{len(grads)} tensors, {params / 1e6:.1f}M parameters, {megabytes:.0f} MB of gradients")
    print(f"{'candidate':<18} {'GB/s read':>10} {HEADER_CELLS}")
    rows = ratio_rows(times, REFERENCE)
    for name, row in rows.items():
        print(f"{name:<18} {megabytes / row.ms:10.2f} {row.cells()}")
    ratios = {name: row.ratio for name, row in rows.items()}
    print(f"bandwidth ng_layer={ratios['ng/layer']:.3f} params={params / 1e6:.1f}M")
    return ratios


if __name__ == "__main__":
    main()
