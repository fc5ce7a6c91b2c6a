"""Paper §4.3: pre-activation ResNet-34 on ImageNet 2012 (TFDS, manual download).

SGD 0.1, momentum 0.9, weight decay 1e-4 (torch's coupled decay, see
cifar_resnet), batch 64, 50 epochs. "0.001 exponential decay" is read as a
rate decaying continuously by a factor 0.001 over the run (0.1 -> 1e-4);
``schedule.decay_epochs`` > 0 changes the period. The Adam variant uses 1e-3.

Variants: ``optimizer`` (momentum, adam), ``transform`` (ng: the paper's
default; none), ``image_size`` (224).
"""

from tf_bng_configs import base

DEFAULTS = dict(optimizer="momentum", transform="ng", image_size=224)
OPTIMIZERS = {"momentum": dict(learning_rate=0.1, momentum=0.9), "adam": dict(learning_rate=1e-3)}


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "imagenet_resnet34"
    c.data.name = "imagenet2012"
    c.data.batch_size = 64
    c.data.augment = True
    c.data.image_size = variant["image_size"]
    c.data.manual_dir = ""
    c.data.shuffle_buffer = 10_000
    c.model.name = "preact_resnet34"
    c.model.depth = 34
    c.model.base_width = 64
    c.model.weight_decay = 1e-4
    c.schedule.name = "exponential"
    c.schedule.decay_rate = 0.001
    c.schedule.decay_epochs = 0.0
    c.train.epochs = 50.0
    c.train.steps_per_loop = 100
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.fast_forward_input = False  # skipping ImageNet batches would decode them all
    return base.apply_common_variants(c, variant, OPTIMIZERS)
