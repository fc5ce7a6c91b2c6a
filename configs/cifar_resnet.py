"""Paper §4.2: ResNet-20/32/44/56/110 on CIFAR-10/100 (He et al. 2016 protocol).

SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, rate / 10 at epochs 80
and 120, 160 epochs, pad-4 crop + flip; the Adam variant uses 1e-3 with the
same schedule. The weight decay is torch's coupled decay
(``model.weight_decay``: gradient += 1e-4 w, so it is part of the gradient
the transform sees); set it to 0 and ``optimizer.weight_decay`` instead for
Keras's decoupled decay outside the transform.

Variants: ``depth`` (20), ``dataset`` (cifar10, cifar100), ``optimizer``
(momentum, adam), ``transform`` (ng_adap: the paper's best; none, ng, clip).
"""

from tf_bng_configs import base

DEFAULTS = dict(depth=20, dataset="cifar10", optimizer="momentum", transform="ng_adap")
OPTIMIZERS = {"momentum": dict(learning_rate=0.1, momentum=0.9), "adam": dict(learning_rate=1e-3)}


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "cifar_resnet"
    c.data.name = variant["dataset"]
    c.data.batch_size = 128
    c.data.augment = True
    c.model.name = "cifar_resnet"
    c.model.depth = variant["depth"]
    c.model.shortcut = "A"
    c.model.weight_decay = 1e-4
    c.schedule.name = "piecewise"
    c.schedule.boundaries = (80.0, 120.0)
    c.schedule.decay_rate = 0.1
    c.train.epochs = 160.0
    c.train.steps_per_loop = 100
    return base.apply_common_variants(c, variant, OPTIMIZERS)
