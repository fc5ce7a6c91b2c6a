"""What a dataset is: :class:`DatasetSpec` (its absence: `tf_bng.errors.DataUnavailableError`)."""

from __future__ import annotations

import dataclasses

__all__ = ["DatasetSpec", "TASKS", "TRAIN", "EVAL"]

TASKS = ("classification", "language_model", "quadratic")
TRAIN = "train"
EVAL = "eval"  # alias of each dataset's own evaluation split (DatasetSpec.eval_split)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts the model, the loss and the loop need before seeing a batch.

    ``num_classes`` is the vocabulary size for a language model (logits per
    token) and 1 for the quadratic problem. ``vocab_size`` is the input
    vocabulary of a text classifier. ``eval_split`` is the split that
    ``split="eval"`` resolves to (the one the paper reports).
    """

    name: str
    task: str
    input_shape: tuple
    num_classes: int
    train_examples: int
    eval_examples: int
    vocab_size: int | None = None
    eval_split: str = "test"
    input_dtype: str = "float32"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"Unknown task {self.task!r}. Valid choices: {', '.join(TASKS)}.")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    def steps_per_epoch(self, global_batch_size: int) -> int:
        """Training steps per epoch (the training stream drops the remainder)."""
        return max(1, self.train_examples // int(global_batch_size))
