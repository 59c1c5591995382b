"""Dependencies point one way: the library ``datagen_gym`` <- the algorithms ``agents`` <- the
application ``datagen`` (tuner, CLI)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "package, forbidden", [("datagen_gym", {"agents", "datagen"}), ("agents", {"datagen"})]
)
def test_no_module_imports_a_layer_above_it(package, forbidden):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        bad = _imported_packages(path) & forbidden
        if bad:
            offenders[rel] = sorted(bad)
    assert not offenders, offenders


def test_using_the_env_loads_neither_agents_nor_the_application():
    code = (
        "import sys, gymnasium as gym, datagen_gym\n"
        "env = gym.make('DataGen-v0', batch_size=4, num_iterations=1)\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "print(sorted(m for m in ('agents', 'datagen') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_the_application_is_not_reachable_from_the_library():
    """The application lives in ``datagen`` only: no alias of it under the library."""
    import datagen_gym

    with pytest.raises(AttributeError):
        datagen_gym.RLTuner  # noqa: B018
    assert not (ROOT / "datagen_gym" / "rl_tuning").exists()
    assert not (ROOT / "datagen_gym" / "cli.py").exists()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):  # imports inside functions count too
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_generators_do_not_import_the_world_built_on_their_prompts():
    """world/corpus.py trains the teacher on the generators' prompts; the generators read the
    world's seed pool as data, so the two packages form no circle."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(bad)
        for path in sorted((ROOT / "datagen_gym" / "generators").rglob("*.py"))
        if (bad := {m for m in _imported_modules(path) if m.startswith("datagen_gym.world")})
    }
    assert not offenders, offenders


@pytest.mark.parametrize("sub", ["backends", "generators", "targets", "replay", "world"])
def test_the_parts_under_the_env_do_not_import_it(sub):
    """Inside the library the env is on top: what it is built from never builds an env."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(bad)
        for path in sorted((ROOT / "datagen_gym" / sub).rglob("*.py"))
        if (bad := {m for m in _imported_modules(path) if m.startswith("datagen_gym.envs")})
    }
    assert not offenders, offenders


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from datagen_gym import *", namespace)
    import datagen_gym

    assert set(datagen_gym.__all__) <= set(namespace)


def test_the_library_packages_import_each_other_without_a_circle():
    """Inside datagen_gym, each sub-package or top module (backends, generators, targets,
    task, world, ...) is a node, each import between two of them an edge: the graph has no
    cycle (the root package, which only registers the envs and imports config, results and
    the sampler, is left out)."""

    def unit(module: str) -> str:
        parts = module.split(".")
        return parts[1] if parts[0] == "datagen_gym" and len(parts) > 1 else ""

    edges: dict[str, set[str]] = {}
    for path in (ROOT / "datagen_gym").rglob("*.py"):
        module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        source = unit(module.removesuffix(".__init__"))
        for target in map(unit, _imported_modules(path)):
            if source and target and target != source and target in _library_units():
                edges.setdefault(source, set()).add(target)

    def reachable(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    circles = sorted((a, b) for a in edges for b in edges[a] if a in reachable(b))
    assert not circles, circles


def _library_units() -> set[str]:
    package = ROOT / "datagen_gym"
    return {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()
    }
