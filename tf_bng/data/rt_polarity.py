"""Rotten Tomatoes sentence polarity v1.0 (Pang & Lee 2005), as in Kim (2014).

Files: ``rt-polarity.pos`` and ``rt-polarity.neg`` (latin-1, one sentence a
line) in ``data_dir/rt-polaritydata`` (the extracted
``rt-polaritydata.tar.gz``) or in ``data_dir`` itself; ``data.download=True``
fetches the archive from ``data.url``.

Sentences are tokenised with the rules of Kim's ``clean_str`` (keep letters,
digits and ``(),!?'```; split off ``'s 've n't 're 'd 'll``, commas, ``!``,
``?`` and parentheses; lowercase). The vocabulary covers every sentence (as in
Kim's code); id 0 is padding. Sentences are right-padded to the longest one
(``data.max_length`` truncates; never shorter than 5, the widest CNN filter).
Labels: 1 positive, 0 negative. A fixed random ``data.train_fraction`` (0.9)
of the sentences, drawn from ``data.split_seed`` (0), is the train split;
the rest is ``test`` (the paper's validation set).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import numpy as np

from tf_bng.data.files import locate
from tf_bng.data.options import get_option
from tf_bng.data.source import array_source
from tf_bng.data.spec import DatasetSpec
from tf_bng.data.vocabulary import build_vocabulary, encode

__all__ = ["RT_POLARITY", "ARCHIVE_URL", "clean_str", "MIN_LENGTH"]

ARCHIVE_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
FILES = ("rt-polarity.pos", "rt-polarity.neg")
_CANDIDATES = ("rt-polaritydata", "")
PAD = "<pad>"
MIN_LENGTH = 5

_DROP = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CLITICS = re.compile(r"('s|'ve|n't|'re|'d|'ll)")
_PUNCTUATION = re.compile(r"([,!?()])")
_SPACES = re.compile(r"\s{2,}")


def clean_str(text: str) -> str:
    """Kim (2014)'s tokenisation rules (case-sensitive clitics, then lowercase).

    Args:
        text: One sentence.

    Returns:
        Its tokens joined by single spaces, e.g. ``"it 's good !"`` for ``"It's good!"``.
    """
    text = _DROP.sub(" ", text)
    text = _CLITICS.sub(r" \1", text)
    text = _PUNCTUATION.sub(r" \1 ", text)
    return _SPACES.sub(" ", text).strip().lower()


def _locate(config: Any) -> str:
    return locate(
        config,
        candidates=_CANDIDATES,
        required=FILES,
        default_url=ARCHIVE_URL,
        advice=(
            "Rotten Tomatoes polarity data: download rt-polaritydata.tar.gz from "
            f"{ARCHIVE_URL} and extract it into {{root}}."
        ),
    )


def _read_sentences(path: str) -> list[list[str]]:
    with open(path, encoding="latin-1") as f:
        return [clean_str(line).split() for line in f if line.strip()]


@functools.lru_cache(maxsize=4)
def _corpus(directory: str, split_seed: int, train_fraction: float, max_length: int | None) -> dict:
    positive = _read_sentences(os.path.join(directory, FILES[0]))
    negative = _read_sentences(os.path.join(directory, FILES[1]))
    sentences = positive + negative
    labels = np.asarray([1] * len(positive) + [0] * len(negative), np.int32)
    vocabulary = build_vocabulary((w for s in sentences for w in s), reserved=(PAD,))
    length = max(MIN_LENGTH, max(len(s) for s in sentences))
    if max_length:
        length = max(MIN_LENGTH, min(length, int(max_length)))
    x = np.zeros([len(sentences), length], np.int32)
    for row, sentence in enumerate(sentences):
        ids = encode(sentence[:length], vocabulary, PAD)
        x[row, : len(ids)] = ids
    order = np.random.default_rng(split_seed).permutation(len(sentences))
    n_train = int(len(sentences) * train_fraction)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    return {
        "train": (x[train], labels[train]),
        "test": (x[test], labels[test]),
        "vocab_size": len(vocabulary),
    }


def _load(config: Any) -> dict:
    fraction = float(get_option(config, "train_fraction", 0.9))
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"data.train_fraction must be in (0, 1), got {fraction}.")
    return _corpus(
        _locate(config),
        int(get_option(config, "split_seed", 0)),
        fraction,
        get_option(config, "max_length"),
    )


def _arrays(config: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    return _load(config)[split]


def _spec(config: Any) -> DatasetSpec:
    corpus = _load(config)
    return DatasetSpec(
        name="rt_polarity",
        task="classification",
        input_shape=corpus["train"][0].shape[1:],
        num_classes=2,
        train_examples=len(corpus["train"][0]),
        eval_examples=len(corpus["test"][0]),
        vocab_size=corpus["vocab_size"],
        input_dtype="int32",
    )


RT_POLARITY = array_source(spec=_spec, arrays=_arrays)
