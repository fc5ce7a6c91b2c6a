"""Paper §4.4: word-level Penn Treebank, 2 x LSTM(200), embedding 200, batch 100, dropout 0.5.

Variants: ``bptt`` (40, 400, 1000: the training sequence length),
``optimizer`` (adam: AdamNG is the paper's winner; momentum, adagrad, ...),
``transform`` (ng, none, ...). Reports perplexity.
"""

from tf_bng_configs import base

DEFAULTS = dict(bptt=40, optimizer="adam", transform="ng")


def get_config(arg=None):
    variant = base.parse_arg(arg, DEFAULTS)
    c = base.get_base_config()
    c.experiment = "ptb_lstm"
    c.data.name = "ptb"
    c.data.batch_size = 100
    c.data.bptt = variant["bptt"]
    c.model.name = "lstm_lm"
    c.model.embedding_dim = 200
    c.model.hidden_size = 200
    c.model.num_layers = 2
    c.model.dropout = 0.5
    c.train.epochs = 50.0
    return base.apply_common_variants(c, variant)
