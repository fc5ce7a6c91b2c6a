"""Experiment configs: one ``get_config(arg=None)`` per file, shared schema in :mod:`base`.

quadratic, mnist_mlp, deep_mlp, cifar_resnet, imagenet_resnet34, ptb_lstm,
sentiment_cnn. Installed as ``tf_bng_configs``. Run one with
``python -m trainers.train --config=configs/<name>.py[:key=value,...] --workdir=DIR``
from a checkout, or ``tf-bng-train --config=<name>[:key=value,...] --workdir=DIR``
from anywhere.
"""
