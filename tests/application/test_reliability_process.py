"""Kills and signals: the same command resumes, bit for bit, and writes nothing outside workdir.

One chain of real binary runs on one workdir, with ``runtime.deterministic``:
SIGTERM, then kill -9 at a random moment of the resumed run, then run to the end;
next to it, the same command uninterrupted in another workdir. Every run
gets an empty HOME and TMPDIR and an empty current directory. SIGINT is
tested in-process (deterministically, at a known inner loop).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import binary_command, binary_env, checkpoint_values, tiny_config

from tf_bng.errors import TrainingInterrupted
from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import Experiment as Trainer

pytestmark = pytest.mark.slow  # trains in subprocesses, kill -9 / SIGTERM / SIGINT loops

STEPS = 120
SETTINGS = {
    "data.limit": 400,
    "data.batch_size": 20,
    "model.width": 16,
    "train.steps": STEPS,
    "train.steps_per_loop": 2,
    "train.log_every": 2,
    "train.eval_every": STEPS,
    "train.checkpoint_every": 6,
    "runtime.deterministic": True,
}
# None: run to the end. SIGTERM first, so the kill -9 always lands in a resumed run past its
# checkpoint (a kill before the first checkpoint proves nothing): each launch costs ~25 s of
# start-up and tracing, and a second kill round covered nothing this order leaves out.
ACTIONS = (signal.SIGTERM, signal.SIGKILL, None)
LAUNCH_TIMEOUT = 120


def _max_train_step(workdir: str) -> int:
    return max((r["step"] for r in read_records(workdir, "train")), default=0)


def _latest_checkpoint(workdir: str) -> str:
    with open(os.path.join(workdir, "checkpoints", "checkpoint")) as f:
        return f.readline().split('"')[1]


def _interrupt_after_progress(process, workdir: str, beyond: int, signum, rng) -> None:
    """Once this run has logged a step past ``beyond``, wait a random moment, send ``signum``."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while _max_train_step(workdir) <= beyond and process.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    if process.poll() is None:
        process.send_signal(signum)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    outside = {name: root / name for name in ("home", "tmp", "cwd")}
    for path in outside.values():
        path.mkdir()
    env = binary_env(home=str(outside["home"]), tmp=str(outside["tmp"]))
    options = dict(
        cwd=str(outside["cwd"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reference_dir, workdir = str(root / "uninterrupted"), str(root / "interrupted")
    reference = subprocess.Popen(binary_command(reference_dir, SETTINGS), **options)
    rng = random.Random(0)
    launches, started = [], [reference]
    try:
        for signum in ACTIONS:
            resumable = os.path.exists(os.path.join(workdir, "checkpoints", "checkpoint"))
            process = subprocess.Popen(binary_command(workdir, SETTINGS), **options)
            started.append(process)
            if signum is not None:
                _interrupt_after_progress(process, workdir, _max_train_step(workdir), signum, rng)
            _, stderr = process.communicate(timeout=LAUNCH_TIMEOUT)
            latest = _latest_checkpoint(workdir) if signum == signal.SIGTERM else None
            launches.append(
                dict(
                    signum=signum,
                    code=process.returncode,
                    stderr=stderr,
                    latest=latest,
                    resumable=resumable,
                )
            )
        _, reference_stderr = reference.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert reference.returncode == 0, reference_stderr[-3000:]
    return dict(launches=launches, workdir=workdir, reference_dir=reference_dir, outside=outside)


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(chain):
    launches = chain["launches"]
    assert launches[-1]["code"] == 0, launches[-1]["stderr"][-3000:]
    killed = [run for run in launches if run["signum"] == signal.SIGKILL]
    assert [run["code"] for run in killed] == [-signal.SIGKILL]
    # A run resumes only from a checkpoint an earlier run saved (a kill may land before one, or
    # while the first one is written: then there is nothing intact to resume from yet), and the
    # last run resumes.
    assert all(run["resumable"] for run in launches if "Resuming at step" in run["stderr"])
    assert launches[-1]["resumable"] and "Resuming at step" in launches[-1]["stderr"]
    resumed, whole = checkpoint_values(chain["workdir"]), checkpoint_values(chain["reference_dir"])
    assert sorted(resumed) == sorted(whole)
    assert any(key.startswith("optimizer/") for key in whole)
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)

    # The logs replay too: the input stream was resumed at the right position.
    def losses(workdir):
        return [(r["step"], r["loss"]) for r in read_records(workdir, "train")]

    assert losses(chain["workdir"]) == losses(chain["reference_dir"])
    assert [s for s, _ in losses(chain["workdir"])] == list(range(2, STEPS + 1, 2))


def test_sigterm_saves_the_current_step_exits_and_the_same_command_resumes(chain):
    launches = chain["launches"]
    index = [run["signum"] for run in launches].index(signal.SIGTERM)
    run = launches[index]
    assert run["code"] == 128 + signal.SIGTERM, run["stderr"][-3000:]
    notices = [line for line in run["stderr"].splitlines() if "interrupted by" in line]
    assert len(notices) == 1 and "Traceback" not in run["stderr"]
    step = int(notices[0].split(" at step ")[1].split()[0])
    assert notices[0] == (
        f"interrupted by SIGTERM at step {step} of {STEPS}: checkpoint saved; "
        "rerun the same command to resume."
    )
    assert run["latest"] == f"ckpt-{step}"
    assert f"Resuming at step {step} of {STEPS}." in launches[index + 1]["stderr"]


def test_nothing_is_written_outside_the_workdir(chain):
    for name, path in chain["outside"].items():
        assert os.listdir(path) == [], f"the runs wrote into {name}: {os.listdir(path)}"
    assert os.path.isdir(os.path.join(chain["workdir"], ".cache", "keras"))  # it went here


def test_sigint_saves_at_the_end_of_the_inner_loop(tmp_path):
    trainer = Trainer(
        tiny_config(**{"train.steps": 10, "train.checkpoint_every": 10}), str(tmp_path)
    )
    loop = trainer.train_step.loop
    calls = []

    def loop_then_ctrl_c(iterator, num_steps):
        calls.append(int(num_steps))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the second inner loop runs
        return loop(iterator, num_steps)

    trainer.train_step.loop = loop_then_ctrl_c
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as error:
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is previous  # the run's handler is gone
    assert error.value.exit_code == 130 and error.value.step == 4
    assert str(error.value).startswith("interrupted by SIGINT at step 4 of 10: checkpoint saved")
    assert _latest_checkpoint(str(tmp_path)) == "ckpt-4" and len(calls) == 2
    assert int(trainer.optimizer.iterations.numpy()) == 4
