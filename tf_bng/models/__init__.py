"""Models of the paper's and the seed's experiments; all output logits except "quadratic".

:func:`build_model(name, spec=..., **options)` builds one of :data:`MODELS`;
the options are the model function's keyword arguments, documented in each module:
:mod:`.mlp` ("mlp", "deep_mlp"), :mod:`.cifar_resnet`, :mod:`.preact_resnet`
("preact_resnet34"), :mod:`.text` ("lstm_lm", "kim_cnn"); "quadratic" is
:class:`tf_bng.problems.quadratic.QuadraticModel` (keys ``dim``, ``seed``).
Layers carry explicit names, so variable paths (and the block names of the
"layer" partition) read like ``stage2_block1_conv1/kernel``.
"""

from tf_bng.models.cifar_resnet import cifar_resnet
from tf_bng.models.mlp import deep_mlp, mlp
from tf_bng.models.preact_resnet import preact_resnet
from tf_bng.models.registry import MODELS, build_model, default_loss
from tf_bng.models.text import kim_cnn, lstm_lm

__all__ = [
    "MODELS",
    "build_model",
    "default_loss",
    "cifar_resnet",
    "deep_mlp",
    "kim_cnn",
    "lstm_lm",
    "mlp",
    "preact_resnet",
]
