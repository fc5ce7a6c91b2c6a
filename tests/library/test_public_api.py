"""The public API is exactly the listed names, each with one import path (issue 21 item 4).

The rule, stated once (``tf_bng/__init__.py`` says the same):

* The public API is ``tf_bng.__all__`` plus the ``__all__`` of each public module it lists,
  recursively (``tf_bng.training`` lists ``runtime``, ``input_pipeline``, ``data_checks``).
  :data:`EXPECTED` below is that list; adding or removing an export means editing it.
* Each public name is exported by exactly one public module (its home). The one exception:
  ``tf_bng`` re-exports the main classes and functions (of a public subpackage or of an
  internal module), and ``tf_bng.<name>`` is then the documented path.
* No other re-export: a module's ``__all__`` lists only what it defines, except that a package's
  ``__init__`` lists names from its own submodules (``tf_bng/__init__.py``: from any of
  ``tf_bng``). No aliases (``Trainer = Experiment``), no old import paths kept as shims. This
  holds for the application (``trainers/``) too.
"""

from __future__ import annotations

import ast
import importlib
import os
import types

import pytest

import tf_bng

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXPECTED: dict[str, set[str]] = {
    "tf_bng": {
        "AdaGradBNG",
        "AdaptiveNormalizedOptimizer",
        "BLOCK_MODES",
        "BackwardScale",
        "BlockTransform",
        "ClippedOptimizer",
        "EvalStep",
        "LinearWarmup",
        "NormalizedOptimizer",
        "Partition",
        "TRANSFORMS",
        "TrainStep",
        "TransformConfig",
        "available_norms",
        "get_norm",
        "make_schedule",
        "partition_variables",
        "register_norm",
        "transform_gradients",
        # the public subpackages
        "backward_scaling",
        "data",
        "errors",
        "gradient_transforms",
        "models",
        "selectors",
        "step",
        "training",
        "wrappers",
    },
    "tf_bng.backward_scaling": {
        "BackwardScale",
        "ScalePoints",
        "find_scale_points",
        "insert_scale_points",
        "power_of_two",
        "true_norms",
    },
    "tf_bng.data": {"DATASETS", "DatasetSpec", "build_dataset", "get_spec"},
    "tf_bng.errors": {
        "CheckpointError",
        "ClusterError",
        "ConfigError",
        "DataError",
        "DataUnavailableError",
        "EXIT_CODES",
        "RunError",
        "TrainingDiverged",
        "TrainingInterrupted",
        "one_line",
    },
    "tf_bng.gradient_transforms": {
        "AddDecayedWeights",
        "BlockScale",
        "Chain",
        "Clip",
        "GradientTransform",
        "Normalize",
        "Route",
        "ScaleBlocks",
        "TransformResult",
        "TrustRatio",
        "Unchanged",
        "add_decayed_weights",
        "all_finite",
        "chain",
        "clip_by_block_norm",
        "clip_by_global_norm",
        "lars",
        "masked",
        "measure_norms",
        "normalize",
        "route",
        "scale_gradient",
        "trust_ratio",
    },
    "tf_bng.models": {
        "MODELS",
        "build_model",
        "cifar_resnet",
        "deep_mlp",
        "default_loss",
        "kim_cnn",
        "lstm_lm",
        "mlp",
        "preact_resnet",
    },
    "tf_bng.selectors": {
        "PathRegex",
        "Predicate",
        "Selector",
        "as_selector",
        "deserialize_selector",
        "one_dimensional",
        "path",
        "serialize_selector",
    },
    "tf_bng.step": {
        "BackwardScaling",
        "GradientAccumulator",
        "StepOutput",
        "BadStepCounter",
        "DynamicLossScale",
        "EvalStep",
        "TrainStep",
        "to_float32",
        "unpack_batch",
    },
    "tf_bng.training": {
        "Checkpointer",
        "Controller",
        "MetricsLog",
        "StopRequest",
        "data_checks",
        "export_saved_model",
        "input_pipeline",
        "read_records",
        "runtime",
        "serving_spec",
    },
    "tf_bng.training.data_checks": {"check_batch", "check_first_batches", "model_input_shape"},
    "tf_bng.training.input_pipeline": {"distribute", "resumable_iterator"},
    "tf_bng.training.runtime": {
        "CLUSTER_ERRORS",
        "PRECISIONS",
        "STRATEGIES",
        "any_worker",
        "cluster_peers",
        "configure_virtual_cpus",
        "is_chief",
        "lost_worker_error",
        "make_strategy",
        "mirrored_strategy",
        "precision_policy",
        "precision_scope",
        "set_determinism",
        "task_id",
        "wait_for_workers",
    },
    "tf_bng.wrappers": {
        "AdaptiveNormalizedOptimizer",
        "BlockTransformOptimizer",
        "ClippedOptimizer",
        "DEFAULT_BLOCKS",
        "NormalizedOptimizer",
        "UpdateTrustRatioOptimizer",
    },
}

# Import paths that existed before 0.1.0 and must not come back.
REMOVED_MODULES = (
    "tf_bng.train_step",
    "tf_bng.training.errors",
    "tf_bng.training.eval_step",
    "tf_bng.training.loss_scaling",
    "tf_bng.training.step_guard",
)
REMOVED_NAMES = (
    ("tf_bng", "make_train_step"),
    ("tf_bng.step", "make_train_step"),
    ("tf_bng.step", "all_finite"),
    ("tf_bng.data", "DataUnavailableError"),
    ("tf_bng.data.spec", "DataUnavailableError"),
    ("tf_bng.training", "ConfigError"),
    ("tf_bng.training", "DataUnavailableError"),
)


def public_modules() -> dict[str, types.ModuleType]:
    """``tf_bng`` and every module reachable from it through module entries of ``__all__``."""
    found: dict[str, types.ModuleType] = {}

    def walk(module: types.ModuleType) -> None:
        found[module.__name__] = module
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType) and value.__name__ not in found:
                walk(value)

    walk(tf_bng)
    return found


def test_the_public_modules_are_the_listed_ones():
    assert sorted(public_modules()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_public_module_exports_exactly_its_listed_names(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    assert set(exported) == EXPECTED[name]
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is listed but not defined"


def test_each_public_name_has_one_home():
    homes: dict[str, list[str]] = {}
    for name, module in public_modules().items():
        if name != "tf_bng":
            for attr in module.__all__:
                homes.setdefault(attr, []).append(name)
    shared = {attr: where for attr, where in homes.items() if len(where) > 1}
    assert not shared, f"exported by two public modules: {shared}"
    for attr in tf_bng.__all__:
        for home in homes.get(attr, []):  # a top-level re-export is its home's object
            assert getattr(tf_bng, attr) is getattr(importlib.import_module(home), attr), attr


@pytest.mark.parametrize("name", REMOVED_MODULES)
def test_an_old_import_path_is_gone(name):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)


@pytest.mark.parametrize("module, attr", REMOVED_NAMES)
def test_a_removed_name_is_gone(module, attr):
    assert not hasattr(importlib.import_module(module), attr)


# -- every module of the library and the application, read as source -------------------------


def _sources() -> list[tuple[str, str, bool]]:
    """``(dotted module name, path, is a package __init__)`` of tf_bng/ and trainers/."""
    found = []
    for top in ("tf_bng", "trainers"):
        for directory, _, files in os.walk(os.path.join(REPO, top)):
            for file in sorted(files):
                if not file.endswith(".py"):
                    continue
                path = os.path.join(directory, file)
                parts = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
                is_init = parts[-1] == "__init__"
                found.append((".".join(parts[:-1] if is_init else parts), path, is_init))
    return found


def _resolve(module: str, is_init: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_init else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _exports(tree: ast.Module) -> list[str]:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))
    return []


def re_exports(module: str, source: str, is_init: bool) -> list[str]:
    """Names in ``__all__`` imported from outside what the module may re-export."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}
    problems = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            origin = _resolve(module, is_init, node)
            for alias in node.names:
                if alias.name == "*":
                    problems.append(f"{module}: from {origin} import *")
                imported[alias.asname or alias.name] = origin
    for name in _exports(tree):
        origin = imported.get(name)
        if origin is None:
            continue  # defined here
        own = is_init and (origin == module or origin.startswith(module + "."))
        top = module == "tf_bng" and (origin == "tf_bng" or origin.startswith("tf_bng."))
        if not (own or top):
            problems.append(f"{module}.{name} re-exports {origin}.{name}")
    return problems


def aliases(module: str, source: str) -> list[str]:
    """Module-level ``Public = SomeClassOrFunction``: a second name for one object."""
    tree = ast.parse(source)
    named = {
        n.name
        for n in tree.body
        if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            named |= {a.asname or a.name for a in node.names}
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            for target in node.targets:
                if (
                    isinstance(target, ast.Name)
                    and not target.id.startswith("_")
                    and node.value.id in named
                ):
                    found.append(f"{module}.{target.id} = {node.value.id}")
    return found


def test_no_module_re_exports_another_packages_names_or_keeps_an_alias():
    problems = []
    for module, path, is_init in _sources():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        problems += re_exports(module, source, is_init) + aliases(module, source)
    assert not problems, "\n".join(problems)


def test_the_source_checks_catch_a_shim_and_an_alias():
    shim = "from tf_bng.errors import ConfigError\n__all__ = ['ConfigError']\n"
    assert re_exports("tf_bng.training.errors", shim, False) == [
        "tf_bng.training.errors.ConfigError re-exports tf_bng.errors.ConfigError"
    ]
    assert re_exports("tf_bng.data", shim, True)  # a package re-exporting another's name
    assert not re_exports("tf_bng", shim, True)  # the top level may
    own = "from .spec import DatasetSpec\n__all__ = ['DatasetSpec']\n"
    assert not re_exports("tf_bng.data", own, True)
    assert re_exports("tf_bng.x", "from tf_bng.step.guard import *\n", False)
    assert aliases("trainers.experiment", "class Experiment: ...\nTrainer = Experiment\n") == [
        "trainers.experiment.Trainer = Experiment"
    ]
