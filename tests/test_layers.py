"""The package's layers import only downward, and importing a low layer stays cheap."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "horseshoe"

# Bottom up. Groups in one tuple are side by side: none imports another, except in the top layers,
# whose modules put the lower ones together and may use each other.
LAYERS = [
    ("runtime",),
    ("data", "models", "diffusion", "train_config"),  # each owns its config section (train_config: train)
    ("sampling", "distill_config"),  # distill_config: the distill section, of diffusion.consistency
    ("config",),
    ("recipe",),
    ("training",),
    ("metrics", "viz"),
    ("runs",),  # everything that makes or reads a run directory; its modules may use each other
    ("cli", "__main__", "serve"),  # serve: the page of `horseshoe serve`, imported by its command only
]
SHARED_LAYERS = {7, 8}  # whose groups may import each other
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def group_of(module: str) -> str:
    """'horseshoe.training.trainer' -> 'training'; 'horseshoe.config' -> 'config'."""
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Every horseshoe module a file imports, at the top or inside a function."""
    module = "horseshoe." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {name for name in found if name.startswith("horseshoe.")}


def test_every_module_is_placed_in_a_layer():
    groups = {group_of("horseshoe." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts))
              for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert groups <= set(RANK), f"modules in no layer: {sorted(groups - set(RANK))}"


def test_no_module_imports_a_layer_above_or_beside_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":  # the root only names things lazily (see the next test)
            continue
        mine = group_of("horseshoe." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for name in sorted(imports(path)):
            theirs = group_of(name)
            if theirs == mine or theirs not in RANK:
                continue
            above = RANK[theirs] > RANK[mine]
            beside = RANK[theirs] == RANK[mine] and RANK[mine] not in SHARED_LAYERS
            if above or beside:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name} ({theirs} is "
                             f"{'above' if above else 'beside'} {mine})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", ["horseshoe.diffusion", "horseshoe.sampling", "horseshoe.models"])
def test_a_low_layer_loads_no_trainer_pictures_or_plots(module):
    code = (f"import sys, {module}; heavy = ['horseshoe.training', 'horseshoe.viz', 'horseshoe.runs', "
            f"'matplotlib', 'PIL']; print([m for m in heavy if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_root_names_load_on_first_use():
    code = ("import sys, horseshoe; before = 'horseshoe.training.trainer' in sys.modules; "
            "horseshoe.Trainer; print(before, 'horseshoe.training.trainer' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_the_command_line_loads_no_trainer_before_a_command_trains():
    # The CLI catches NonFiniteLoss from training.errors: parsing arguments or printing --help costs no trainer.
    code = "import sys, horseshoe.cli.app; print('horseshoe.training.trainer' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False"], done.stderr


@pytest.mark.parametrize("module", ["horseshoe.runs.page", "horseshoe.runs.memorisation"])
def test_one_runs_module_loads_alone_and_the_package_names_load_on_first_use(module):
    code = (f"import sys, {module}; before = 'horseshoe.runs.load' in sys.modules; "
            "from horseshoe.runs import LoadedRun, load_run; import horseshoe.runs.load as load; "
            "print(before, load_run is load.load_run and LoadedRun is load.LoadedRun)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
