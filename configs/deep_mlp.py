"""The keras seed's deep MLP, run as the seed's notebook ran it (scaled to mnist5k).

What the source ran (keras-normalized-optimizers, notebooks/mnist_mlp.ipynb):

* model: 30 x (Dense(128, ReLU, he_normal, small l2) -> BatchNorm -> Dropout 0.2), softmax head;
* data: full MNIST (60,000 training images), batch 128: 469 steps per epoch;
* optimizers: ``NormalizedOptimizer(SGD(lr, momentum=0.9, nesterov=True), normalization='max')``
  (NSGD) and ``NormalizedOptimizer(Adam(lr), normalization='max')`` (NAdam): the max norm,
  per tensor (the seed's wrappers normalize each variable on its own); Adam with Keras's
  defaults otherwise (beta 0.9 / 0.999, epsilon 1e-7 = ``K.epsilon()``, not the paper's 1e-8);
* schedule: lr 0.01 for 10 epochs, then 0.001 for 10, then 0.0001 for 10 (4,690 steps a phase);
* printed validation accuracy: NAdam 0.711 after epoch 1, 0.946 at the end; NSGD 0.470 after
  epoch 1, 0.772 at the end.

Here: the same model, norm, blocks, optimizers, batch and the same three learning rates, on the
4,000 training digits of mnist5k (31 steps per epoch at batch 128). The phases are scaled to the
CPU budget: 15 epochs each (465 steps, about the seed's one epoch of 469 steps), 45 epochs in all
(1,395 steps, ~30 % of the seed's first phase alone). ``train.epochs`` and
``schedule.boundaries`` can be raised together to come closer to the seed's budget.

Variants: ``optimizer`` (nesterov: NSGD's base; adam: NAdam's base, both at lr 0.01),
``transform`` (ng: the seed's wrappers; none: the plain baselines), ``norm`` (max: the seed's;
l2: the comparison), ``depth`` (30), ``dataset`` (mnist5k, mnist).
"""

from tf_bng_configs import base

DEFAULTS = dict(depth=30, optimizer="nesterov", transform="ng", norm="max", dataset="mnist5k")
# The notebook's rates: 0.01, x0.1 after each phase.
LEARNING_RATE = 0.01
PHASE_EPOCHS = 15.0  # 465 steps of mnist5k at batch 128 ~ the seed's one epoch (469 steps)


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
    c.transform.blocks = "variable"  # the seed's wrappers: one block per tensor
    c.schedule.name = "piecewise"
    c.schedule.boundaries = (PHASE_EPOCHS, 2 * PHASE_EPOCHS)
    c.schedule.decay_rate = 0.1
    c.train.epochs = 3 * PHASE_EPOCHS
    rate = {"learning_rate": LEARNING_RATE}
    seed_adam = {**rate, "epsilon": 1e-7}  # Keras's default, which the seed's Adam(lr) used
    c = base.apply_common_variants(
        c, variant, optimizer_overrides={"nesterov": rate, "adam": seed_adam, "sgd": rate}
    )
    c.transform.norm = variant["norm"]
    return c
