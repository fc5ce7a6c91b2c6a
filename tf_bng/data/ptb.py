"""Word-level Penn Treebank (Mikolov's ``simple-examples`` preprocessing).

Files: ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``, looked up in
``data_dir``, ``data_dir/simple-examples/data`` (the layout of the extracted
``simple-examples.tgz``) and ``data_dir/ptb``. With ``data.download=True``
the archive is fetched from ``data.url`` (default: Mikolov's page).

Each line ends with ``<eos>``; the vocabulary is every training word plus
``<eos>`` (10,000 for the real corpus) and ``<unk>``, ids by decreasing
frequency. A split is one token stream cut into non-overlapping sequences of
``data.bptt`` tokens (default 40): ``x = ids[t : t+bptt]``,
``y = ids[t+1 : t+bptt+1]``. The sequences are independent examples (no
hidden state carried between batches), shuffled when training.
Splits: train, validation, test (``eval`` = test, as in the paper's curves).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from tf_bng.data.files import locate
from tf_bng.data.options import get_option
from tf_bng.data.source import array_source
from tf_bng.data.spec import DatasetSpec
from tf_bng.data.vocabulary import build_vocabulary, encode

__all__ = ["PTB", "ARCHIVE_URL", "FILES"]

ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
_CANDIDATES = ("", os.path.join("simple-examples", "data"), "ptb")
EOS, UNK = "<eos>", "<unk>"


def _locate(config: Any) -> str:
    return locate(
        config,
        candidates=_CANDIDATES,
        required=tuple(FILES.values()),
        default_url=ARCHIVE_URL,
        advice=(
            f"Penn Treebank: download simple-examples.tgz from {ARCHIVE_URL} and extract it "
            "into {root} (giving {root}/simple-examples/data/ptb.train.txt)."
        ),
    )


def _read_tokens(path: str) -> list[str]:
    tokens: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens.extend(line.split())
            tokens.append(EOS)
    return tokens


@functools.lru_cache(maxsize=4)
def _corpus(directory: str) -> tuple[dict, dict]:
    tokens = {split: _read_tokens(os.path.join(directory, name)) for split, name in FILES.items()}
    vocabulary = build_vocabulary(tokens["train"])
    vocabulary.setdefault(UNK, len(vocabulary))
    ids = {split: encode(words, vocabulary, UNK) for split, words in tokens.items()}
    return vocabulary, ids


def _sequences(ids: np.ndarray, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    count = (len(ids) - 1) // bptt
    if count < 1:
        raise ValueError(f"A split of {len(ids)} tokens is too short for bptt={bptt}.")
    x = ids[: count * bptt].reshape(count, bptt)
    y = ids[1 : count * bptt + 1].reshape(count, bptt)
    return x, y


def _bptt(config: Any) -> int:
    return int(get_option(config, "bptt", 40))


def _arrays(config: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    _, ids = _corpus(_locate(config))
    return _sequences(ids[split], _bptt(config))


def _spec(config: Any) -> DatasetSpec:
    vocabulary, ids = _corpus(_locate(config))
    bptt = _bptt(config)
    return DatasetSpec(
        name="ptb",
        task="language_model",
        input_shape=(bptt,),
        num_classes=len(vocabulary),
        train_examples=(len(ids["train"]) - 1) // bptt,
        eval_examples=(len(ids["test"]) - 1) // bptt,
        input_dtype="int32",
    )


PTB = array_source(spec=_spec, arrays=_arrays, splits=tuple(FILES))
