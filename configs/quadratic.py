"""The keras seed's convex quadratic: f(w) = 0.5 w'Qw - b'w, w in R^100; reports f - f*.

The input is a dummy batch (the model's output is f(w) whatever it sees), so
an "epoch" is one step. Variants: ``optimizer`` (sgd, adam, ...),
``transform`` (ng: the seed's normalized SGD; none), ``steps`` (1000).
"""

from tf_bng_configs import base

DEFAULTS = dict(optimizer="sgd", transform="ng", steps=1000)


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "quadratic"
    c.data.name = "quadratic"
    c.data.batch_size = 2  # any size: the loss ignores the data; even for two replicas
    c.model.name = "quadratic"
    c.model.dim = 100
    c.model.seed = 0  # the seed notebook's np.random.seed(0)
    c.train.steps = variant["steps"]
    c.train.steps_per_loop = 100
    c.train.log_every = 100
    c.train.eval_every = variant["steps"]
    c.train.checkpoint_every = variant["steps"]
    return base.apply_common_variants(c, variant)
