"""The package's layers depend one way, read from the imports: tasks -> scorers -> zoo -> generators -> core (the
zoo builds ready generators and the scorers' offline models; eval uses only the core's file reading and writing)."""

import ast
from pathlib import Path

import consensus

ROOT = Path(consensus.__file__).parent
# layer -> the layers it may import from (besides itself)
ALLOWED = {
    "core": set(),
    "eval": {"core"},
    "generators": {"core"},
    "zoo": {"core", "generators"},
    "scorers": {"core", "zoo", "generators"},
    "distributed": {"core", "generators"},
    "report": {"core", "cli", "eval"},
    "tasks": {"core", "zoo", "eval", "generators", "scorers", "cli", "distributed", "report"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("consensus."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("consensus.")}
    return found


def test_dependencies_point_one_way():
    wrong = []
    for layer, allowed in ALLOWED.items():
        for path in (ROOT / layer).rglob("*.py"):
            for target in _imports(path) - allowed - {layer}:
                wrong.append(f"{path.relative_to(ROOT)} imports consensus.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_no_model_library():
    libraries = {"transformers", "diffusers", "peft", "pybullet", "PIL", "sentence_transformers", "av"}
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & libraries, f"{path.name} imports {names & libraries}"
