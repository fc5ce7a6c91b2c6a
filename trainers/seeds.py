"""One config over N seeds: ``python -m trainers.seeds --config=... --seeds=0,1,2 --workdir=DIR``.

Deep nets are chaotic enough that one run says little about a claim; this
trains the same config once per ``train.seed`` (each seed a plain
``trainers.train`` run in ``DIR/seed<N>``, so every run can be resumed or
inspected on its own) and prints, per final metric, the median, min and max
over the seeds; ``DIR/summary.json`` holds the same plus the per-seed values
and commands. ``--config`` and ``--config.<key>=value`` work as in
``trainers.train``; ``--jobs=2`` trains two seeds at once. Running the same
command again resumes unfinished seeds and re-summarizes finished ones.

Exit codes: 0 all seeds finished (a seed stopped as diverged, exit 4, is a
result and summarized as it ended); 1 a bad command line or a seed that
failed otherwise; 2 a bad config or workdir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from absl import app, flags


def define_flags() -> dict:
    """The binary's flags, defined when it runs (importing this module defines none).

    ``--config`` and ``--workdir`` are ``trainers.train``'s own (importing it
    defines them), so both binaries read a config the same way.
    """
    from . import train

    return dict(
        train=train,
        seeds=flags.DEFINE_list(
            "seeds", None, "Comma-separated train.seed values, e.g. 0,1,2,3,4."
        ),
        num_seeds=flags.DEFINE_integer("num_seeds", None, "Seeds 0 .. N-1 (instead of --seeds)."),
        jobs=flags.DEFINE_integer("jobs", 1, "Seeds trained at the same time (processes)."),
        metrics=flags.DEFINE_list(
            "metrics", None, "Final metrics to summarize (default: all but the bookkeeping ones)."
        ),
    )


# Final metrics that describe the run's speed or settings, not its outcome.
BOOKKEEPING = ("step", "train_learning_rate", "train_steps_per_second", "train_bad_steps")
DIVERGED_EXIT = 4  # trainers.train: train.max_bad_steps non-finite steps in a row


def parse_seeds(seeds: Sequence[str] | None, num_seeds: int | None) -> list[int]:
    """The seed list from ``--seeds`` or ``--num_seeds`` (exactly one of them)."""
    if (seeds is None) == (num_seeds is None):
        raise ValueError("give exactly one of --seeds=0,1,2 and --num_seeds=N")
    if num_seeds is not None:
        if num_seeds < 1:
            raise ValueError(f"--num_seeds={num_seeds} must be >= 1")
        return list(range(num_seeds))
    try:
        values = [int(s) for s in seeds]
    except ValueError:
        raise ValueError(f"--seeds={','.join(seeds)} must be integers, e.g. 0,1,2") from None
    if not values or len(set(values)) != len(values):
        raise ValueError(f"--seeds={','.join(seeds)} must be distinct integers, at least one")
    return values


def _flag_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def seed_command(config_file: str, overrides: Mapping[str, Any], seed: int, root: str) -> list[str]:
    """The ``trainers.train`` command line of one seed.

    Op determinism is on unless ``overrides`` set ``runtime.deterministic``:
    rerunning a seed on the same machine then gives the same numbers.
    """
    if "train.seed" in overrides:
        raise ValueError("--config.train.seed is set by --seeds/--num_seeds; remove it")
    overrides = {"runtime.deterministic": True, **overrides}
    return [
        sys.executable,
        "-m",
        f"{__package__ or 'trainers'}.train",
        f"--config={config_file}",
        *(f"--config.{k}={_flag_value(v)}" for k, v in overrides.items()),
        f"--config.train.seed={seed}",
        f"--workdir={seed_dir(root, seed)}",
    ]


def seed_dir(root: str, seed: int) -> str:
    return os.path.join(root, f"seed{seed}")


def _environment() -> dict:
    """The child processes import the same tf_bng/trainers as this one (a worktree, say)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    return env


def run_seeds(commands: Mapping[int, list[str]], root: str, jobs: int) -> dict[int, int]:
    """Run the commands, ``jobs`` at a time; ``{seed: exit code}``; output in seed<N>/log.txt."""
    pending, running, codes = list(commands), {}, {}
    env = _environment()
    while pending or running:
        while pending and len(running) < max(1, jobs):
            seed = pending.pop(0)
            os.makedirs(seed_dir(root, seed), exist_ok=True)
            log = open(os.path.join(seed_dir(root, seed), "log.txt"), "a")
            log.write(" ".join(commands[seed]) + "\n")
            log.flush()
            process = subprocess.Popen(
                commands[seed], stdout=log, stderr=subprocess.STDOUT, env=env
            )
            running[seed] = (process, log, time.perf_counter())
        time.sleep(0.5)
        for seed, (process, log, started) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[seed]
            codes[seed] = process.returncode
            print(
                f"seed {seed}: exit {process.returncode} after "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    return codes


def summary_record(
    config_file: str,
    overrides: Mapping[str, Any],
    seeds: Sequence[int],
    root: str,
    per_seed: Mapping[int, dict],
    codes: Mapping[int, int],
    summary: Mapping[str, Any],
) -> dict:
    """What ``summary.json`` holds (``summary``: metric -> :class:`~.reporting.seeds.Spread`)."""
    return {
        "config": config_file,
        "overrides": {k: _flag_value(v) for k, v in overrides.items()},
        "seeds": list(seeds),
        "exit_codes": {str(s): codes.get(s) for s in seeds},
        "per_seed": {str(s): per_seed[s] for s in seeds},
        "summary": {m: spread.as_dict() for m, spread in summary.items()},
        "commands": {
            str(s): " ".join(seed_command(config_file, overrides, s, root)[1:]) for s in seeds
        },
    }


def main(argv, holders: dict) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    train, jobs = holders["train"], holders["jobs"].value
    config_flag = flags.FLAGS["config"]
    config_file, overrides = config_flag.config_filename, dict(config_flag.override_values)
    root = train._WORKDIR.value
    try:
        seeds = parse_seeds(holders["seeds"].value, holders["num_seeds"].value)
        commands = {s: seed_command(config_file, overrides, s, root) for s in seeds}
    except ValueError as e:
        sys.exit(f"error: {e}.")
    train.keep_files_in_workdir(root)  # importing TensorFlow below must not write into HOME
    from tf_bng.errors import ConfigError
    from tf_bng.training.metrics_log import read_records

    from .config_checks import check_workdir, validate_config
    from .reporting.seeds import final_metrics, format_summary, summarize

    try:
        validate_config(train._CONFIG.value)  # one line now, not one per seed later
        check_workdir(root)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(ConfigError.exit_code)

    print(f"{len(seeds)} seeds of {config_file}, {jobs} at a time, into {root}/seed<N>", flush=True)
    codes = run_seeds(commands, root, jobs)
    per_seed = {s: final_metrics(read_records(seed_dir(root, s))) for s in seeds}
    metrics = holders["metrics"].value or sorted(
        {m for s in seeds for m in per_seed[s]} - set(BOOKKEEPING)
    )
    summary = summarize({s: {m: per_seed[s].get(m) for m in metrics} for s in seeds})
    record = summary_record(config_file, overrides, seeds, root, per_seed, codes, summary)
    with open(os.path.join(root, "summary.json"), "w") as f:
        json.dump(record, f, indent=1)
    print()
    print(format_summary(summary, seeds))
    print(f"\nWrote {os.path.join(root, 'summary.json')}.")
    failed = [s for s in seeds if codes[s] not in (0, DIVERGED_EXIT)]
    if failed:
        logs = ", ".join(os.path.join(seed_dir(root, s), "log.txt") for s in failed)
        sys.exit(f"error: seed(s) {', '.join(map(str, failed))} failed; see {logs}")


def run() -> None:
    holders = define_flags()
    app.run(lambda argv: main(argv, holders), flags_parser=holders["train"]._parse_flags)


if __name__ == "__main__":
    run()
