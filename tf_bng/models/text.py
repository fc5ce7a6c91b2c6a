"""The paper's text models: a 2-layer LSTM language model and Kim's (2014) CNN.

``lstm_lm`` (PTB, section 4.4) keys: ``embedding_dim`` (200), ``hidden_size``
(200), ``num_layers`` (2), ``dropout`` (0.5, on the embeddings, between the
LSTMs and before the logits, as in Zaremba et al.). It returns logits for
every position, ``[batch, bptt, vocab]``, and keeps no state between batches.

``kim_cnn`` (Rotten Tomatoes, section 4.5; Kim's CNN-rand) keys:
``embedding_dim`` (128, random U(-0.25, 0.25) init and trained),
``filter_widths`` ((3, 4, 5)), ``num_filters`` (100 each), ReLU, max-over-time
pooling, ``dropout`` (0.5), ``max_norm`` (3.0: Kim's l2 constraint on the
output weight vectors, applied by the optimizer after each step; 0 = off).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from tf_bng.models.layers import logits

__all__ = ["lstm_lm", "kim_cnn"]


def lstm_lm(
    vocab_size: int,
    sequence_length: int | None = None,
    *,
    embedding_dim: int = 200,
    hidden_size: int = 200,
    num_layers: int = 2,
    dropout: float = 0.5,
    name: str = "lstm_lm",
) -> keras.Model:
    """A built word-level LSTM language model: token ids -> next-token logits.

    Args:
        vocab_size: Tokens in the vocabulary (embedding rows and logits).
        sequence_length: Tokens per example (the BPTT length), or None for any length.
        embedding_dim: Size of the token embeddings.
        hidden_size: Units of every LSTM layer.
        num_layers: Stacked LSTM layers.
        dropout: Dropout rate on the embeddings, after each LSTM and so before the logits.
        name: The model's name.

    Returns:
        A built ``keras.Model`` with outputs ``[batch, sequence_length, vocab_size]``.
    """
    inputs = keras.Input(shape=(sequence_length,), dtype="int32", name="tokens")
    x = layers.Embedding(int(vocab_size), int(embedding_dim), name="embedding")(inputs)
    x = layers.Dropout(float(dropout), name="embedding_dropout")(x)
    for i in range(1, int(num_layers) + 1):
        x = layers.LSTM(int(hidden_size), return_sequences=True, name=f"lstm{i}")(x)
        x = layers.Dropout(float(dropout), name=f"lstm{i}_dropout")(x)
    return keras.Model(inputs, logits(x, int(vocab_size)), name=name)


def kim_cnn(
    vocab_size: int,
    sequence_length: int,
    num_classes: int = 2,
    *,
    embedding_dim: int = 128,
    filter_widths: Sequence[int] = (3, 4, 5),
    num_filters: int = 100,
    dropout: float = 0.5,
    max_norm: float = 3.0,
    name: str = "kim_cnn",
) -> keras.Model:
    """A built single-layer CNN sentence classifier (CNN-rand) that outputs logits.

    Args:
        vocab_size: Tokens in the vocabulary (embedding rows).
        sequence_length: Tokens per (padded) sentence; at least the widest filter.
        num_classes: Units of the output (logits) layer.
        embedding_dim: Size of the randomly initialized, trained token embeddings.
        filter_widths: Widths (in tokens) of the convolution filters, one Conv1D per width.
        num_filters: Filters per width.
        dropout: Dropout rate before the logits.
        max_norm: Kim's max-norm constraint on the output weight vectors (0: off).
        name: The model's name.

    Returns:
        A built ``keras.Model``.

    Raises:
        ValueError: ``sequence_length`` is shorter than the widest filter.
    """
    if sequence_length < max(filter_widths):
        raise ValueError(
            f"Sentences of {sequence_length} tokens are shorter than the widest filter "
            f"({max(filter_widths)}); pad them."
        )
    inputs = keras.Input(shape=(int(sequence_length),), dtype="int32", name="tokens")
    embedded = layers.Embedding(
        int(vocab_size),
        int(embedding_dim),
        embeddings_initializer=keras.initializers.RandomUniform(-0.25, 0.25),
        name="embedding",
    )(inputs)
    pooled = []
    for width in filter_widths:
        feature_maps = layers.Conv1D(
            int(num_filters), int(width), activation="relu", name=f"conv{width}"
        )(embedded)
        pooled.append(layers.GlobalMaxPooling1D(name=f"conv{width}_maxpool")(feature_maps))
    x = layers.Concatenate(name="features")(pooled) if len(pooled) > 1 else pooled[0]
    x = layers.Dropout(float(dropout), name="dropout")(x)
    constraint = keras.constraints.MaxNorm(float(max_norm), axis=0) if max_norm else None
    return keras.Model(inputs, logits(x, int(num_classes), kernel_constraint=constraint), name=name)
