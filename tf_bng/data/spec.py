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

    Attributes:
        name: The dataset's name (one of :data:`tf_bng.data.DATASETS`).
        task: One of :data:`TASKS`: what the loss and the metrics are.
        input_shape: The shape of one example's input, without the batch dimension.
        num_classes: The number of classes; the vocabulary size for a language model
            (logits per token); 1 for the quadratic problem.
        train_examples: Examples in the train split.
        eval_examples: Examples in the evaluation split.
        vocab_size: The input vocabulary of a text classifier; None otherwise.
        eval_split: The split that ``split="eval"`` resolves to (the one the paper
            reports).
        input_dtype: The inputs' dtype: ``"float32"``, or ``"int32"`` token ids.

    Raises:
        ValueError: If ``task`` is not one of :data:`TASKS`.
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
        """Training steps per epoch (the training stream drops the remainder).

        Args:
            global_batch_size: Examples per step over all replicas.

        Returns:
            ``train_examples // global_batch_size``, at least 1.
        """
        return max(1, self.train_examples // int(global_batch_size))
