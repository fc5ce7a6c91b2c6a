"""Input pipelines for the paper's and the seed's experiments.

``get_spec(name, **options)`` and ``build_dataset(name, split=..., training=...,
seed=..., batch_size=..., **options)``; the options (all optional but
``batch_size``, defaults in the modules that read them):

* every dataset: ``name`` (one of :data:`DATASETS`), ``batch_size`` (global),
  ``data_dir`` (empty: TFDS's default for TFDS sets, ``$TF_BNG_DATA_DIR`` or
  ``~/tf_bng_data`` for files), ``download`` (False: never touch the
  network), ``limit`` (cap on the examples of every split, for tests and
  smoke runs), ``split_seed`` (0: the fixed train/test split of mnist5k,
  digits and rt_polarity, independent of the training seed);
* ``mnist5k``, ``digits``: offline real digits (see :mod:`.small_digits`);
* ``mnist``, ``cifar10``, ``cifar100``, ``imagenet2012`` (TFDS): ``augment``,
  ``flatten``, ``image_size``, ``shuffle_buffer``, ``manual_dir`` (see
  :mod:`.tfds_images`);
* ``ptb``: ``bptt`` (40), ``url`` (see :mod:`.ptb`);
* ``rt_polarity``: ``train_fraction`` (0.9), ``max_length``, ``url`` (see
  :mod:`.rt_polarity`);
* ``synthetic``: ``image_shape``, ``num_classes``, ``train_examples``,
  ``eval_examples``, ``data_seed``; ``quadratic``: nothing (see
  :mod:`.synthetic`).

Splits: ``"train"``, ``"eval"`` (the split the paper reports:
``DatasetSpec.eval_split``) and each dataset's own names (``"test"``;
``"validation"`` for ptb and imagenet2012).
"""

from tf_bng.data.registry import DATASETS, build_dataset, get_spec
from tf_bng.data.spec import DatasetSpec

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "build_dataset",
    "get_spec",
]
