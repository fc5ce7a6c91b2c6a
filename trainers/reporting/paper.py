"""The paper's GPU-scale results (Tables 1-4) and the commands that would reproduce them here.

The numbers are transcribed from the ICLR 2018 submission (Yu et al.,
"Block-Normalized Gradient Method: An Empirical Study for Training Deep
Neural Network"); they are the paper's, not ours, and these experiments are
not run by the report (they need a GPU and datasets that do not ship with
any package). Each row names the ``configs/*.py`` variant that runs it.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "PAPER_MNIST_STEPS_PER_EPOCH",
    "PaperTable",
    "PAPER_TABLES",
    "PTB_NOTE",
    "PTB_ROWS",
    "table_commands",
    "ptb_commands",
]


# Paper §4.1: 60,000 MNIST training images at batch 100.
PAPER_MNIST_STEPS_PER_EPOCH = 60_000 // 100


@dataclasses.dataclass(frozen=True)
class PaperTable:
    key: str
    title: str
    experiment: str  # configs/<experiment>.py
    fixed_arg: str  # part of the variant argument shared by the whole table
    columns: tuple[str, ...]
    column_arg: tuple[str, ...]  # per column, appended to the argument ("" if none)
    rows: tuple[tuple[str, str, tuple[str, ...]], ...]  # (paper's name, variant arg, cells)
    note: str = ""


_RESNETS = ("ResNet-20", "ResNet-32", "ResNet-44", "ResNet-56", "ResNet-110")
_RESNET_DEPTH_ARGS = tuple(f"depth={d}" for d in (20, 32, 44, 56, 110))
_ADAM = "optimizer=adam"
_SGDM = "optimizer=momentum"

PAPER_TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        key="table1",
        title="Table 1: test error (%) of ResNets on CIFAR-10, mean ± std of 5 runs",
        experiment="cifar_resnet",
        fixed_arg="dataset=cifar10",
        columns=_RESNETS,
        column_arg=_RESNET_DEPTH_ARGS,
        rows=(
            (
                "Adam",
                f"{_ADAM},transform=none",
                ("9.14 ± 0.07", "8.33 ± 0.17", "7.794 ± 0.22", "7.33 ± 0.19", "6.75 ± 0.30"),
            ),
            (
                "AdamCLIP",
                f"{_ADAM},transform=clip",
                ("10.18 ± 0.16", "9.18 ± 0.06", "8.89 ± 0.14", "9.24 ± 0.19", "9.96 ± 0.29"),
            ),
            (
                "AdamNG",
                f"{_ADAM},transform=ng",
                ("9.42 ± 0.20", "8.50 ± 0.17", "8.06 ± 0.20", "7.69 ± 0.19", "7.29 ± 0.08"),
            ),
            (
                "AdamNGadap",
                f"{_ADAM},transform=ng_adap",
                ("8.52 ± 0.16", "7.62 ± 0.25", "7.28 ± 0.18", "7.04 ± 0.27", "6.71 ± 0.17"),
            ),
            ("SGDM* (He et al.)", "", ("8.75", "7.51", "7.17", "6.97", "6.61 ± 0.16")),
            (
                "SGDM",
                f"{_SGDM},transform=none",
                ("7.93 ± 0.15", "7.15 ± 0.20", "7.09 ± 0.21", "7.34 ± 0.52", "7.07 ± 0.65"),
            ),
            (
                "SGDMCLIP",
                f"{_SGDM},transform=clip",
                ("9.03 ± 0.15", "8.44 ± 0.14", "8.55 ± 0.20", "8.30 ± 0.08", "8.35 ± 0.25"),
            ),
            (
                "SGDMNG",
                f"{_SGDM},transform=ng",
                ("7.82 ± 0.26", "7.09 ± 0.13", "6.60 ± 0.21", "6.59 ± 0.23", "6.28 ± 0.22"),
            ),
            (
                "SGDMNGadap",
                f"{_SGDM},transform=ng_adap",
                ("7.71 ± 0.18", "6.90 ± 0.11", "6.43 ± 0.03", "6.19 ± 0.11", "5.87 ± 0.10"),
            ),
        ),
        note=(
            "SGDM* = He et al.'s published numbers (only ResNet-110 has several runs). "
            '"7.794" is as printed in the paper\'s text.'
        ),
    ),
    PaperTable(
        key="table2",
        title="Table 2: test error (%) of ResNets on CIFAR-100, mean ± std of 5 runs",
        experiment="cifar_resnet",
        fixed_arg="dataset=cifar100",
        columns=_RESNETS,
        column_arg=_RESNET_DEPTH_ARGS,
        rows=(
            (
                "Adam",
                f"{_ADAM},transform=none",
                ("34.44 ± 0.33", "32.94 ± 0.16", "31.53 ± 0.13", "30.80 ± 0.30", "28.20 ± 0.14"),
            ),
            (
                "AdamCLIP",
                f"{_ADAM},transform=clip",
                ("38.10 ± 0.48", "35.78 ± 0.20", "35.41 ± 0.19", "35.62 ± 0.39", "39.10 ± 0.35"),
            ),
            (
                "AdamNG",
                f"{_ADAM},transform=ng",
                ("35.06 ± 0.39", "33.78 ± 0.07", "32.26 ± 0.29", "31.86 ± 0.21", "29.87 ± 0.49"),
            ),
            (
                "AdamNGadap",
                f"{_ADAM},transform=ng_adap",
                ("32.98 ± 0.52", "31.74 ± 0.07", "30.75 ± 0.60", "29.92 ± 0.26", "28.09 ± 0.46"),
            ),
            (
                "SGDM",
                f"{_SGDM},transform=none",
                ("32.28 ± 0.16", "30.62 ± 0.36", "29.96 ± 0.66", "29.07 ± 0.41", "28.79 ± 0.63"),
            ),
            (
                "SGDMCLIP",
                f"{_SGDM},transform=clip",
                ("35.06 ± 0.37", "34.49 ± 0.49", "33.36 ± 0.36", "34.00 ± 0.96", "33.38 ± 0.73"),
            ),
            (
                "SGDMNG",
                f"{_SGDM},transform=ng",
                ("32.46 ± 0.37", "31.16 ± 0.37", "30.05 ± 0.29", "29.42 ± 0.51", "27.49 ± 0.25"),
            ),
            (
                "SGDMNGadap",
                f"{_SGDM},transform=ng_adap",
                ("31.43 ± 0.35", "29.56 ± 0.25", "28.92 ± 0.28", "28.48 ± 0.19", "26.72 ± 0.39"),
            ),
        ),
    ),
    PaperTable(
        key="table3",
        title="Table 3: ImageNet top-1 / top-5 error (%), pre-activation ResNet-34, 50 epochs",
        experiment="imagenet_resnet34",
        fixed_arg="",
        columns=("Top-1", "Top-5"),
        column_arg=("", ""),
        rows=(
            ("Adam", f"{_ADAM},transform=none", ("35.6", "14.09")),
            ("AdamNG", f"{_ADAM},transform=ng", ("30.17", "10.51")),
            ("SGDM", f"{_SGDM},transform=none", ("29.05", "9.95")),
            ("SGDMNG", f"{_SGDM},transform=ng", ("28.43", "9.57")),
        ),
        note="ImageNet must be downloaded by hand (image-net.org) and prepared once with data.download=true.",
    ),
    PaperTable(
        key="table4",
        title="Table 4: best validation accuracy, Kim's CNN on Rotten Tomatoes, 150 epochs",
        experiment="sentiment_cnn",
        fixed_arg="",
        columns=("Validation accuracy",),
        column_arg=("",),
        rows=(
            ("AdamNG", f"{_ADAM},transform=ng", ("77.11%",)),
            ("Adam", f"{_ADAM},transform=none", ("74.02%",)),
            ("AdaGradNG", "optimizer=adagrad,transform=ng", ("71.95%",)),
            ("AdaGrad", "optimizer=adagrad,transform=none", ("69.89%",)),
            ("SGDMNG", f"{_SGDM},transform=ng", ("71.95%",)),
            ("SGDM", f"{_SGDM},transform=none", ("64.35%",)),
        ),
        note="The paper reports the best validation accuracy over the 150 epochs (our log has every epoch's).",
    ),
)

PTB_NOTE = (
    "Paper §4.4 (Figure 3, curves only, no table): 2 × LSTM(200) on word-level PTB with BPTT 40, 400 "
    "and 1000; AdamNG is better than every other method at every sequence length, in training and test."
)
PTB_ROWS = (
    ("AdamNG", f"{_ADAM},transform=ng"),
    ("Adam", f"{_ADAM},transform=none"),
    ("AdaGradNG", "optimizer=adagrad,transform=ng"),
    ("AdaGrad", "optimizer=adagrad,transform=none"),
    ("SGDMNG", f"{_SGDM},transform=ng"),
    ("SGDM", f"{_SGDM},transform=none"),
)


def _command(experiment: str, arg: str, workdir: str) -> str:
    # data.download=true: fetch (CIFAR, PTB, Rotten Tomatoes) or prepare (ImageNet) on first use.
    return (
        f"python -m trainers.train --config=configs/{experiment}.py:{arg} "
        f"--config.data.download=true --workdir={workdir}"
    )


def _join(*parts: str) -> str:
    return ",".join(p for p in parts if p)


def table_commands(table: PaperTable, workdir_root: str = "runs/paper") -> list[str]:
    """One shell line per row: a loop over the table's columns when they are variants."""
    lines = []
    for _name, row_arg, _ in table.rows:
        if not row_arg:
            continue
        tag = row_arg.replace("optimizer=", "").replace(",transform=", "-")
        varying = [a for a in table.column_arg if a]
        if varying:
            key, _, _ = varying[0].partition("=")
            values = " ".join(a.partition("=")[2] for a in varying)
            arg = _join(table.fixed_arg, f"{key}=${key}", row_arg)
            workdir = f"{workdir_root}/{table.key}/{tag}-{key}${key}"
            lines.append(
                f"for {key} in {values}; do {_command(table.experiment, arg, workdir)}; done"
            )
        else:
            arg = _join(table.fixed_arg, row_arg)
            lines.append(_command(table.experiment, arg, f"{workdir_root}/{table.key}/{tag}"))
    return lines


def ptb_commands(workdir_root: str = "runs/paper") -> list[str]:
    """Paper Figure 3: every method at BPTT 40, 400 and 1000."""
    return [
        "for bptt in 40 400 1000; do "
        + _command("ptb_lstm", f"bptt=$bptt,{arg}", f"{workdir_root}/ptb/{name}-bptt$bptt")
        + "; done"
        for name, arg in PTB_ROWS
    ]
