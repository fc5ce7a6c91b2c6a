"""tf_bng.data: splits, ordering, sharding, augmentation and offline failures.

No test touches the network: TFDS datasets run under tfds.testing.mock_data,
PTB and Rotten Tomatoes files are generated in tmp_path, and "download" is
exercised with a file:// URL.
"""

from __future__ import annotations

import os
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf

from tf_bng import data
from tf_bng.data.pipeline import array_stream, batch_stream
from tf_bng.data.rt_polarity import clean_str
from tf_bng.errors import DataUnavailableError


def batches(dataset, count=None):
    taken = dataset if count is None else dataset.take(count)
    return [(np.asarray(x), np.asarray(y)) for x, y in taken]


def context(pipelines, pipeline_id, replicas):
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines, input_pipeline_id=pipeline_id, num_replicas_in_sync=replicas
    )


def row_keys(x):
    return {r.tobytes() for r in np.asarray(x).reshape(len(x), -1)}


# -- mnist5k: the offline default ------------------------------------------------------------


def test_mnist5k_fixed_stratified_split():
    config = dict(name="mnist5k", batch_size=300)
    spec = data.get_spec(config)
    assert (spec.task, spec.input_shape, spec.num_classes) == ("classification", (784,), 10)
    assert (spec.train_examples, spec.eval_examples, spec.eval_split) == (4000, 1000, "test")

    evaluation = batches(data.build_dataset(config, split="eval", training=False, seed=3))
    assert [len(y) for _, y in evaluation] == [300, 300, 300, 100]  # remainder kept
    x_test = np.concatenate([x for x, _ in evaluation])
    y_test = np.concatenate([y for _, y in evaluation])
    assert x_test.dtype == np.float32 and y_test.dtype == np.int32
    assert 0.0 <= x_test.min() and x_test.max() <= 1.0 and x_test.max() > 0.99
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10

    # The test split ignores the training seed.
    again = batches(data.build_dataset(config, split="test", training=False, seed=99))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in again]), x_test)

    # One training epoch: 13 full batches, each train digit once, none from the test split.
    train = batches(data.build_dataset(config, split="train", training=True, seed=0), 13)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    assert all(len(y) == 300 for _, y in train)
    assert len(row_keys(x_train)) == 3900
    assert not row_keys(x_train) & row_keys(x_test)
    assert np.bincount(y_train, minlength=10).min() > 350


def test_training_order_depends_on_seed_only_and_reshuffles_each_epoch():
    config = dict(name="mnist5k", batch_size=10, limit=40)
    assert data.get_spec(config).train_examples == 40

    def first_epochs(seed):
        x = np.concatenate(
            [
                b[0]
                for b in batches(
                    data.build_dataset(config, split="train", training=True, seed=seed), 8
                )
            ]
        )
        return x[:40], x[40:]

    epoch1, epoch2 = first_epochs(seed=5)
    same1, same2 = first_epochs(seed=5)
    other1, _ = first_epochs(seed=6)
    np.testing.assert_array_equal(epoch1, same1)
    np.testing.assert_array_equal(epoch2, same2)
    assert not np.array_equal(epoch1, other1)
    assert not np.array_equal(epoch1, epoch2)
    # Each epoch is a permutation of the same 40 examples.
    assert row_keys(epoch1) == row_keys(epoch2) == row_keys(other1)
    assert len(row_keys(epoch1)) == 40


def test_digits_split_is_stratified_80_20():
    spec = data.get_spec(dict(name="digits", batch_size=8))
    assert spec.input_shape == (64,) and spec.train_examples + spec.eval_examples == 1797
    assert abs(spec.eval_examples / 1797 - 0.2) < 0.01


def test_training_iterator_position_survives_a_checkpoint(tmp_path):
    config = dict(name="mnist5k", batch_size=10, limit=30)
    iterator = iter(data.build_dataset(config, split="train", training=True, seed=2))
    for _ in range(4):  # into the second epoch
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    expected = [next(iterator)[0].numpy() for _ in range(3)]
    resumed = iter(data.build_dataset(config, split="train", training=True, seed=2))
    tf.train.Checkpoint(iterator=resumed).restore(path)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)[0].numpy(), want)


# -- sharding: every layout sees the single-device global batches ------------------------------


def test_two_input_pipelines_split_each_global_batch_disjointly():
    config = dict(name="synthetic", batch_size=8, train_examples=40, image_shape=(3,))
    single = batches(data.build_dataset(config, split="train", training=True, seed=1), 10)
    shards = [
        batches(
            data.build_dataset(
                config, split="train", training=True, seed=1, input_context=context(2, i, 2)
            ),
            10,
        )
        for i in range(2)
    ]
    for step in range(10):
        x0, x1 = shards[0][step][0], shards[1][step][0]
        assert x0.shape == x1.shape == (4, 3)
        assert not row_keys(x0) & row_keys(x1)
        np.testing.assert_array_equal(np.concatenate([x0, x1]), single[step][0])


def test_augmentation_seeds_do_not_depend_on_the_layout():
    x = np.arange(12, dtype=np.float32).reshape(12, 1)

    def noisy(features, label, seed):
        return features + tf.random.stateless_uniform([1], seed=seed), label

    def run(ctx):
        stream = array_stream(x, np.zeros(12, np.int32), training=True, seed=7)
        dataset = batch_stream(
            stream, global_batch_size=6, training=True, seed=7, input_context=ctx, preprocess=noisy
        )
        return [b[0] for b in batches(dataset, 4)]

    single = run(None)
    halves = [run(context(2, i, 2)) for i in range(2)]
    for step in range(4):
        np.testing.assert_array_equal(
            np.concatenate([halves[0][step], halves[1][step]]), single[step]
        )
    # The noise differs between the two epochs' passes over the same examples.
    assert len({float(v) for v in np.concatenate(single).ravel()}) == 24


def test_eval_sharding_keeps_every_example_once():
    config = dict(name="synthetic", batch_size=8, eval_examples=21, image_shape=(2,))
    single = np.concatenate(
        [x for x, _ in batches(data.build_dataset(config, split="eval", training=False, seed=0))]
    )
    shards = [
        np.concatenate(
            [
                x
                for x, _ in batches(
                    data.build_dataset(
                        config, split="eval", training=False, seed=0, input_context=context(2, i, 2)
                    )
                )
            ]
        )
        for i in range(2)
    ]
    assert len(single) == 21 and len(shards[0]) + len(shards[1]) == 21
    assert row_keys(shards[0]) | row_keys(shards[1]) == row_keys(single)


def test_distribute_feeds_mirrored_replicas_the_single_device_batch(mirrored_strategy):
    config = dict(name="synthetic", batch_size=8, train_examples=32, image_shape=(2,))
    expected = batches(data.build_dataset(config, split="train", training=True, seed=4), 3)
    from tf_bng.training import input_pipeline

    iterator = iter(
        input_pipeline.distribute(
            mirrored_strategy,
            lambda seed, context: data.build_dataset(
                config, split="train", training=True, seed=seed, input_context=context
            ),
            seed=4,
        )
    )
    for step in range(3):
        x, y = next(iterator)
        local_x = mirrored_strategy.experimental_local_results(x)
        local_y = mirrored_strategy.experimental_local_results(y)
        assert [t.shape[0] for t in local_x] == [4, 4]
        np.testing.assert_array_equal(np.concatenate(local_x), expected[step][0])
        np.testing.assert_array_equal(np.concatenate(local_y), expected[step][1])


# -- generated datasets ------------------------------------------------------------------------


def test_synthetic_is_deterministic_by_data_seed():
    config = dict(
        name="synthetic", batch_size=4, image_shape=(5, 5, 2), num_classes=3, eval_examples=4
    )
    spec = data.get_spec(config)
    assert (spec.input_shape, spec.num_classes, spec.eval_examples) == ((5, 5, 2), 3, 4)

    def eval_batch(**overrides):
        return batches(
            data.build_dataset({**config, **overrides}, split="eval", training=False, seed=0)
        )[0]

    x, y = eval_batch()
    assert x.shape == (4, 5, 5, 2) and y.dtype == np.int32 and set(y) <= {0, 1, 2}
    np.testing.assert_array_equal(eval_batch()[0], x)
    assert not np.array_equal(eval_batch(data_seed=1)[0], x)


def test_quadratic_data_is_one_batch_of_zeros_per_epoch():
    config = dict(name="quadratic", batch_size=6)
    spec = data.get_spec(config)
    assert (spec.task, spec.train_examples, spec.input_shape) == ("quadratic", 6, (1,))
    ((x, y),) = batches(data.build_dataset(config, split="train", training=True, seed=0), 1)
    assert x.shape == (6, 1) and y.shape == (6,)
    assert not x.any() and not y.any()


def test_unknown_dataset_and_split_name_the_valid_choices():
    with pytest.raises(ValueError, match="mnist5k"):
        data.get_spec(dict(name="nope", batch_size=2))
    with pytest.raises(ValueError, match="eval"):
        data.build_dataset(
            dict(name="quadratic", batch_size=2), split="dev", training=False, seed=0
        )


# -- Penn Treebank -------------------------------------------------------------------------------

PTB_TEXT = {
    "train": " the cat sat on the mat \n the dog sat on the rug \n a cat ran \n",
    "valid": " the cat sat \n",
    "test": " the bird sat on a mat \n",
}


def write_ptb(directory):
    os.makedirs(directory, exist_ok=True)
    for split, text in PTB_TEXT.items():
        with open(os.path.join(directory, f"ptb.{split}.txt"), "w") as f:
            f.write(text * 3)


def words_of(text):
    return [w for line in text.splitlines() for w in line.split() + ["<eos>"]]


def test_ptb_sequences_shift_targets_by_one_token(tmp_path):
    write_ptb(tmp_path / "simple-examples" / "data")  # the extracted archive layout
    config = dict(name="ptb", batch_size=2, data_dir=str(tmp_path), bptt=4)
    spec = data.get_spec(config)
    train_words = words_of(PTB_TEXT["train"] * 3)
    vocabulary = set(train_words)
    assert spec.task == "language_model" and spec.input_shape == (4,)
    assert spec.num_classes == len(vocabulary) + 1  # + <unk>
    assert spec.train_examples == (len(train_words) - 1) // 4
    assert spec.input_dtype == "int32"

    xs, ys = zip(*batches(data.build_dataset(config, split="train", training=False, seed=0)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (spec.train_examples, 4)
    stream = np.concatenate([x.ravel(), y[-1, -1:]])
    np.testing.assert_array_equal(y.ravel(), stream[1:])
    # The ids relabel the words one-to-one, and the most frequent word ("the") is id 0.
    pairs = set(zip(train_words[: len(stream)], stream.tolist()))
    assert len(pairs) == len({w for w, _ in pairs}) == len({i for _, i in pairs})
    assert dict(pairs)["the"] == 0

    # "bird" is not in the training vocabulary: it maps to <unk>, the last id.
    ((tx, ty),) = batches(
        data.build_dataset({**config, "batch_size": 100}, split="eval", training=False, seed=0)
    )
    test_words = words_of(PTB_TEXT["test"] * 3)
    bird = test_words.index("bird")
    assert np.concatenate([tx.ravel(), ty[-1, -1:]])[bird] == spec.num_classes - 1


def test_ptb_missing_names_the_archive_and_download_fetches_it(tmp_path):
    config = dict(name="ptb", batch_size=2, data_dir=str(tmp_path / "data"))
    with pytest.raises(DataUnavailableError, match="simple-examples.tgz"):
        data.get_spec(config)

    source = tmp_path / "source"
    write_ptb(source / "simple-examples" / "data")
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "simple-examples", arcname="simple-examples")
    spec = data.get_spec({**config, "download": True, "url": archive.as_uri()})
    assert spec.num_classes == len(set(words_of(PTB_TEXT["train"]))) + 1
    assert (tmp_path / "data" / "simple-examples" / "data" / "ptb.test.txt").is_file()


# -- Rotten Tomatoes ---------------------------------------------------------------------------


def test_clean_str_follows_kims_rules():
    assert clean_str("It's a MESS, isn't it?!") == "it 's a mess , is n't it ? !"
    assert clean_str("(great) -- film... we'll see") == "( great ) film we 'll see"
    assert clean_str('caf\xe9 "noir"') == "caf noir"


def test_rt_polarity_pads_and_splits_90_10(tmp_path):
    folder = tmp_path / "rt-polaritydata"
    folder.mkdir()
    positive = [f"a fine film number {i} , truly" for i in range(30)]
    negative = [f"a dull mess {i}" for i in range(19)] + ["bad"]
    (folder / "rt-polarity.pos").write_bytes("\n".join(positive).encode("latin-1"))
    (folder / "rt-polarity.neg").write_bytes("\n".join(negative).encode("latin-1"))
    config = dict(name="rt_polarity", batch_size=64, data_dir=str(tmp_path))
    spec = data.get_spec(config)
    assert (spec.train_examples, spec.eval_examples, spec.num_classes) == (45, 5, 2)
    assert spec.input_shape == (7,)  # the longest sentence: 7 tokens
    words = {w for s in positive + negative for w in s.split()}
    assert spec.vocab_size == len(words) + 1  # + padding id 0

    ((x_train, y_train),) = batches(
        data.build_dataset(config, split="train", training=False, seed=0)
    )
    ((x_test, y_test),) = batches(data.build_dataset(config, split="eval", training=False, seed=0))
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test])
    assert sorted(y.tolist()) == [0] * 20 + [1] * 30
    lengths = (x > 0).sum(axis=1)
    assert sorted(lengths.tolist()) == sorted(len(s.split()) for s in positive + negative)
    assert all(not row[n:].any() for row, n in zip(x, lengths))  # right padding
    # Sentences of one length carry one label here: the labels follow the sentences.
    assert set(y[lengths == 7]) == {1} and set(y[lengths == 4]) == {0}
    # The split is fixed by split_seed, not by the training seed.
    ((again, _),) = batches(data.build_dataset(config, split="test", training=False, seed=8))
    np.testing.assert_array_equal(again, x_test)


def test_rt_polarity_missing_names_the_archive(tmp_path):
    with pytest.raises(DataUnavailableError, match="rt-polaritydata.tar.gz"):
        data.get_spec(dict(name="rt_polarity", batch_size=2, data_dir=str(tmp_path)))


# -- TFDS ----------------------------------------------------------------------------------------

CIFAR10_MEAN = np.array([125.3, 123.0, 113.9]) / 255
CIFAR10_STD = np.array([63.0, 62.1, 66.7]) / 255


def test_missing_tfds_dataset_fails_fast_offline(tmp_path):
    for name in ("mnist", "cifar10"):
        config = dict(name=name, batch_size=2, data_dir=str(tmp_path), download=False)
        start = time.monotonic()
        with pytest.raises(DataUnavailableError, match="download=True"):
            data.get_spec(config)
        with pytest.raises(DataUnavailableError):
            data.build_dataset(config, split="train", training=True, seed=0)
        assert time.monotonic() - start < 10
    config = dict(name="imagenet2012", batch_size=2, data_dir=str(tmp_path), download=True)
    with pytest.raises(DataUnavailableError, match="ILSVRC2012_img_train.tar") as error:
        data.get_spec(config)
    assert str(tmp_path / "downloads" / "manual") in str(error.value)
    assert not list(tmp_path.rglob("*.tar"))


def test_tfds_mnist_is_flat_unit_range_and_imagenet_is_cropped_to_image_size():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        config = dict(name="mnist", batch_size=4, limit=6)
        spec = data.get_spec(config)
        assert (spec.input_shape, spec.num_classes, spec.train_examples) == ((784,), 10, 6)
        x, y = batches(data.build_dataset(config, split="train", training=True, seed=0), 1)[0]
        imagenet = dict(name="imagenet2012", batch_size=2, image_size=24, limit=6)
        spec = data.get_spec(imagenet)
        assert (spec.input_shape, spec.num_classes, spec.eval_split) == (
            (24, 24, 3),
            1000,
            "validation",
        )
        shapes = {
            b[0].shape
            for training in (True, False)
            for b in batches(
                data.build_dataset(imagenet, split="eval", training=training, seed=0), 2
            )
        }
    assert x.shape == (4, 784) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert shapes == {(2, 24, 24, 3)}


def test_tfds_cifar10_augmentation_is_a_padded_crop_maybe_flipped():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        config = dict(name="cifar10", batch_size=4, limit=4)
        assert data.get_spec(config).input_shape == (32, 32, 3)
        raw = tfds.load("cifar10", split="train", as_supervised=True)
        images = np.stack([np.asarray(image, np.float64) for image, _ in raw])
        ((plain, _),) = batches(data.build_dataset(config, split="test", training=False, seed=0))
        augmented = np.concatenate(
            [
                x
                for x, _ in batches(
                    data.build_dataset(config, split="train", training=True, seed=0), 6
                )
            ]
        )

    normalized = (images / 255 - CIFAR10_MEAN) / CIFAR10_STD
    np.testing.assert_allclose(plain, normalized, atol=1e-5)  # evaluation: no augmentation
    padded = np.pad(normalized, [(0, 0), (4, 4), (4, 4), (0, 0)])
    keys, crops = [], []
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy : dy + 32, dx : dx + 32]
            keys += [(dy, dx, False), (dy, dx, True)]
            crops += [crop, crop[:, :, ::-1]]
    crops = np.stack(crops)  # [candidate, source image, 32, 32, 3]
    used = set()
    for image in augmented:
        error = np.abs(crops - image).max(axis=(2, 3, 4))
        candidate, _ = np.unravel_index(np.argmin(error), error.shape)
        assert error.min() < 1e-5, "augmented image is not a pad-4 crop / flip of a training image"
        used.add(keys[candidate])
    assert len(used) > 4  # different crops were drawn
    assert {flip for _, _, flip in used} == {False, True}
