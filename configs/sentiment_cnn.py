"""Paper §4.5: Kim (2014) CNN-rand on Rotten Tomatoes polarity, 90/10 split, 150 epochs.

Random 128-d embeddings, filter widths 3/4/5 x 100, dropout 0.5, max-norm 3
on the output weights, batch 50 (Kim's). Variants: ``optimizer`` (adam:
AdamNG is the paper's best; adagrad, momentum), ``transform`` (ng, none).
"""

from tf_bng_configs import base

DEFAULTS = dict(optimizer="adam", transform="ng")


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "sentiment_cnn"
    c.data.name = "rt_polarity"
    c.data.batch_size = 50
    c.data.train_fraction = 0.9
    c.model.name = "kim_cnn"
    c.model.embedding_dim = 128
    c.model.filter_widths = (3, 4, 5)
    c.model.num_filters = 100
    c.model.dropout = 0.5
    c.model.max_norm = 3.0
    c.train.epochs = 150.0
    return base.apply_common_variants(c, variant)
