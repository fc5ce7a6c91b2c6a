"""The keras seed's deep MLP: 30 x (Dense(128) + BatchNorm + Dropout 0.2), small l2, MNIST.

Variants: ``depth`` (30), ``optimizer`` (nesterov: the seed's SGD 0.01 with
Nesterov momentum 0.9; adam, ...), ``transform`` (ng: the seed's
NormalizedOptimizer, which normalizes per tensor: ``transform.blocks`` is
"variable" here), ``dataset`` (mnist5k, mnist).
"""

from tf_bng_configs import base

DEFAULTS = dict(depth=30, optimizer="nesterov", transform="ng", dataset="mnist5k")


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "deep_mlp"
    c.data.name = variant["dataset"]
    c.data.batch_size = 128
    c.model.name = "deep_mlp"
    c.model.depth = variant["depth"]
    c.model.width = 128
    c.model.activation = "relu"
    c.model.batch_norm = True
    c.model.dropout = 0.2
    c.model.l2 = 1e-5
    c.transform.blocks = "variable"
    c.train.epochs = 20.0
    return base.apply_common_variants(c, variant)
