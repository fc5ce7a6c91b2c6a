"""Paper §4.1: deep sigmoid MLP on MNIST (100 units per hidden layer, batch 100).

Variants: ``depth`` (6, 12, 18; hidden layers), ``optimizer`` (adam,
momentum, sgd, adagrad, adagrad_bng, ...), ``transform`` (none, ng, ...),
``dataset`` (mnist5k: the offline 5,000-digit MNIST; mnist: full TFDS MNIST).
Example: ``--config=configs/mnist_mlp.py:depth=18,optimizer=adam,transform=ng``.
"""

from tf_bng_configs import base

DEFAULTS = dict(depth=18, optimizer="adam", transform="ng", dataset="mnist5k")


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "mnist_mlp"
    c.data.name = variant["dataset"]
    c.data.batch_size = 100
    c.model.name = "mlp"
    c.model.depth = variant["depth"]
    c.model.width = 100
    c.model.activation = "sigmoid"
    c.model.batch_norm = False
    c.model.dropout = 0.0
    c.model.l2 = 0.0
    c.train.epochs = 50.0
    return base.apply_common_variants(c, variant)
