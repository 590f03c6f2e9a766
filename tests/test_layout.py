"""The package's layers depend one way, read from the imports: tasks -> scorers -> zoo -> generators -> core (the
zoo builds ready generators and the scorers' offline models; eval uses only the core's file reading and writing).

The check reads every module of the package (a folder it does not know fails it), resolves relative imports, and
sees dynamic ones: ``importlib.import_module`` or ``__import__`` of a literal name is checked like an import, and
one of a computed name is allowed only at the few places listed, each saying why. Within a layer, the families
keep apart too: a task imports no other task, a generator family no other family, and a scorer family only those
it is built on. ``test_the_check_catches_each_kind_of_violation`` plants one of each and sees it caught."""

from __future__ import annotations

import ast
from pathlib import Path

import consensus

ROOT = Path(consensus.__file__).parent
# layer -> the layers it may import from (besides itself); modules at the package's top (cli.py, __init__.py)
# assemble the layers and may import any
ALLOWED = {
    "core": set(),
    "eval": {"core"},
    "generators": {"core"},
    "zoo": {"core", "generators"},
    "scorers": {"core", "zoo", "generators"},
    "distributed": {"core", "generators"},
    "report": {"core", "cli", "eval"},
    "tasks": {"core", "zoo", "eval", "generators", "scorers", "cli", "distributed", "report",
              "consensus"},  # the package itself, for its version
}
# layer -> family -> the other families of that layer it may import (none unless listed)
FAMILIES = {
    "scorers": {"frames": {"image", "text"}},  # a video's frames are scored by the image and text scorers
    "generators": {},
    "tasks": {},
}
# modules that import a name computed at run time, and why that cannot break the layers
DYNAMIC = {
    "cli.py": "the subcommands' modules, from EXPERIMENTS (the top may import any layer)",
    "core/scorer.py": "the user's own --scorer module, not one of the package's",
    "zoo/cache.py": "a third-party package, to say how to install it when it is missing",
    "scorers/image/imagenet.py": "a third-party weights package, by its published name",
}


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path, root: Path) -> tuple[set[str], bool]:
    """The ``consensus.*`` modules ``path`` imports (relative ones resolved, literal dynamic ones included), and
    whether it imports a computed name."""
    package = ["consensus", *_module_name(path, root)]
    if path.name != "__init__.py":
        package = package[:-1]
    found, computed = set(), False
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.level and not node.module:  # from . import a, b: each is a module of that package
                found |= {f"{module}.{alias.name}" for alias in node.names}
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.add(argument.value)
            else:
                computed = True
    return {name for name in found if name == "consensus" or name.startswith("consensus.")}, computed


def _is_dynamic_import(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id in ("__import__", "import_module"))


def violations(root: Path) -> list[str]:
    """Every import of the package at ``root`` that breaks the rules above, one line each."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root)
        layer = where.parts[0] if len(where.parts) > 1 else None
        if layer is not None and layer not in ALLOWED:
            unknown = f"the folder {layer!r} is no layer the layout knows; add it to ALLOWED"
            if not any(line.endswith(unknown) for line in wrong):
                wrong.append(f"{where}: {unknown}")
            continue
        imported, computed = _imports(path, root)
        if computed and where.as_posix() not in DYNAMIC:
            wrong.append(f"{where} imports a module named at run time; import it by name (or list it in DYNAMIC)")
        if layer is None:
            continue
        family = where.parts[1] if len(where.parts) > 2 else None
        for name in sorted(imported):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else "consensus"
            if target not in ALLOWED[layer] | {layer}:
                wrong.append(f"{where} imports {name}")
            elif target == layer and layer in FAMILIES and family is not None and len(parts) > 2:
                other = parts[2]  # a family is a folder of the layer; its other modules are shared by all
                if other != family and (root / layer / other).is_dir() and \
                        other not in FAMILIES[layer].get(family, set()):
                    wrong.append(f"{where} imports {name}: the {layer} family {family!r} may not use {other!r}")
    return wrong


def test_dependencies_point_one_way():
    wrong = violations(ROOT)
    assert not wrong, "\n".join(wrong)


PLANTED = {
    "core/engine.py": "from consensus.tasks.math import cli\n",  # a layer imports upward
    "generators/text/steps.py": "from ...zoo import gemma\n",  # relative, upward
    "core/budget.py": "import importlib\nimportlib.import_module('consensus.scorers.text')\n",  # dynamic, upward
    "eval/metrics.py": "import importlib\nname = 'consensus.' + 'tasks'\nimportlib.import_module(name)\n",  # computed
    "tasks/math/data.py": "from consensus.tasks.vqa import data\n",  # a task imports another task
    "scorers/image/clip.py": "from consensus.scorers.text import answers\n",  # a family uses an unlisted one
    "plugins/extra.py": "x = 1\n",  # a folder no rule covers
    "tasks/vqa/data.py": "", "scorers/text/answers.py": "",  # what two of them import
}


def test_the_check_catches_each_kind_of_violation(tmp_path):
    for name, text in {"__init__.py": "", **PLANTED}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(tmp_path).parents:
            (tmp_path / folder / "__init__.py").touch()
        path.write_text(text)
    wrong = violations(tmp_path)
    assert wrong == [
        "core/budget.py imports consensus.scorers.text",
        "core/engine.py imports consensus.tasks.math",
        "eval/metrics.py imports a module named at run time; import it by name (or list it in DYNAMIC)",
        "generators/text/steps.py imports consensus.zoo",
        "plugins/__init__.py: the folder 'plugins' is no layer the layout knows; add it to ALLOWED",
        "scorers/image/clip.py imports consensus.scorers.text: the scorers family 'image' may not use 'text'",
        "tasks/math/data.py imports consensus.tasks.vqa: the tasks family 'math' may not use 'vqa'",
    ], "\n".join(wrong)


def test_the_core_imports_no_model_library():
    libraries = {"transformers", "diffusers", "peft", "pybullet", "PIL", "sentence_transformers", "av"}
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & libraries, f"{path.name} imports {names & libraries}"


MAX_FUNCTION_LINES = 80  # a function longer than a screen is split into named parts


def test_no_function_is_longer_than_a_screen():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(ROOT.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "split into named parts: " + "; ".join(long)
