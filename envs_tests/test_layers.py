"""Dependencies point one way: the library ``datagen_gym`` <- the algorithms ``agents`` <- the
application ``datagen`` (tuner, CLI). The old application paths under ``datagen_gym`` still
work, lazily and with a deprecation warning."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIMS = {
    "datagen_gym/__init__.py",
    "datagen_gym/cli.py",
    "datagen_gym/rl_tuning/__init__.py",
    "datagen_gym/rl_tuning/rl_tuner.py",
    "datagen_gym/rl_tuning/user_target.py",
}


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
        if rel in SHIMS:
            continue
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


def test_old_application_paths_work_and_warn():
    import datagen_gym
    from datagen.rl_tuning import RLTuner

    with pytest.warns(DeprecationWarning, match="moved to datagen.rl_tuning.RLTuner"):
        assert datagen_gym.RLTuner is RLTuner
    import datagen_gym.rl_tuning as old

    old.__dict__.pop("RLTuner", None)
    with pytest.warns(DeprecationWarning, match="datagen_gym.rl_tuning.RLTuner moved"):
        from datagen_gym.rl_tuning import RLTuner as via_old
    assert via_old is RLTuner
    out = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-m", "datagen_gym.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0 and "rl-tune" in out.stdout
    assert "moved to datagen.cli.main" in out.stderr
