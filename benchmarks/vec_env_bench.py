"""DataGen-v0 env steps per second with 1, 2 and 4 workers: SubprocVecEnv and RayVecEnv.

    python -m benchmarks.vec_env_bench [--workers 1 2 4] [--steps 4] [--repeats 3]
        [--batch-size 16] [--no-ray]

Each worker holds one env (one process or one Ray actor, one torch and one BLAS thread). All
vec envs are built first; after a reset and one warm-up step each, ``--repeats`` rounds time
``--steps`` vector steps (random actions) of every vec env in turn, so load from other work
spreads over all of them, and the best round counts; env steps/s is
``steps * workers / seconds``. Start-up (process spawn,
imports, Ray start) is reported separately. DummyVecEnv with one env, in this process, is the
baseline. Writes benchmarks/results/vec_env.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _make(kind: str, workers: int, env_kwargs: dict):
    from datagen_gym.envs.vector import make_vec_env

    if kind == "dummy":
        return make_vec_env(workers, vec_cls="dummy", env_kwargs=env_kwargs)
    if kind == "subproc":
        return make_vec_env(workers, start_method="forkserver", env_kwargs=env_kwargs)
    if kind == "ray":
        from datagen_gym.envs.ray_vec_env import RayVecEnv

        # 0 CPUs per actor: 4 actors may share 2 cores, as 4 SubprocVecEnv workers do.
        return RayVecEnv(env_kwargs, num_envs=workers, num_cpus_per_env=0)
    raise ValueError(kind)


def _steps(venv, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        venv.step(np.stack([venv.action_space.sample() for _ in range(venv.num_envs)]))
    return time.perf_counter() - t0


def run(
    settings: list[tuple[str, int]], steps: int, repeats: int, env_kwargs: dict, seed: int = 0
) -> list[dict]:
    """Build every vec env first, then time them in interleaved rounds, so that load from
    other work on the machine spreads over all settings; the best round counts."""
    rows, envs = [], []
    try:
        for kind, workers in settings:
            t0 = time.perf_counter()
            venv = _make(kind, workers, env_kwargs)
            envs.append(venv)
            rows.append(
                {
                    "kind": kind,
                    "workers": workers,
                    "startup_s": time.perf_counter() - t0,
                    "times": [],
                    "loads": [],
                }
            )
            venv.action_space.seed(seed)
            venv.seed(seed)
            venv.reset()
            _steps(venv, 1)  # warm-up: the first generate/fit in each worker
        for _ in range(repeats):
            for row, venv in zip(rows, envs):
                row["times"].append(_steps(venv, steps))
                row["loads"].append(os.getloadavg()[0])
    finally:
        for venv in envs:
            venv.close()
    for row in rows:
        row["seconds"] = min(row["times"])
        row["env_steps"] = steps * row["workers"]
        row["steps_per_s"] = row["env_steps"] / row["seconds"]
        row["load"] = float(np.mean(row["loads"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=4, help="timed vector steps per round")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved timing rounds; the best counts"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="records per env step")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args(argv)

    from datagen_gym.envs.vector import limit_threads

    limit_threads(1)  # the Dummy baseline gets one torch and one BLAS thread, like each worker
    import torch

    env_kwargs = {"batch_size": args.batch_size, "num_iterations": 1000}
    load_start = os.getloadavg()
    settings = [("dummy", 1)] + [("subproc", n) for n in args.workers]
    if not args.no_ray:
        import ray

        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
        )
        settings += [("ray", n) for n in args.workers]
    try:
        rows = run(settings, args.steps, args.repeats, env_kwargs)
    finally:
        if not args.no_ray:
            ray.shutdown()

    base = rows[0]["steps_per_s"]
    names = {
        "dummy": "DummyVecEnv (baseline)",
        "subproc": "SubprocVecEnv (forkserver)",
        "ray": "RayVecEnv (local Ray)",
    }
    load = os.getloadavg()
    lines = [
        "# Vector envs: DataGen-v0 env steps per second",
        "",
        f"`python -m benchmarks.vec_env_bench --workers {' '.join(map(str, args.workers))} "
        f"--steps {args.steps} --repeats {args.repeats} --batch-size {args.batch_size}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
        "1 torch thread and 1 BLAS thread per env. Env: embedded teacher, built-in sentiment "
        f"target, batch_size={args.batch_size}, random actions; after one warm-up step, the best "
        f"of {args.repeats} interleaved rounds of {args.steps} vector steps. 1-minute load "
        f"average at the start {load_start[0]:.2f}, at the end {load[0]:.2f} (last column: mean "
        "over the row's rounds; above the core count means other work shared the machine).",
        "",
        "| vec env | workers | start-up (s) | env steps | time (s) | env steps/s | vs baseline "
        "| load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {names[r['kind']]} | {r['workers']} | {r['startup_s']:.1f} | "
            f"{r['env_steps']} | {r['seconds']:.2f} | {r['steps_per_s']:.2f} | "
            f"{r['steps_per_s'] / base:.2f}x | {r['load']:.1f} |"
        )
    lines += [
        "",
        "A step is CPU-bound (teacher generation, then the target's fit), so the speed-up is "
        f"capped by the cores: at most ~{os.cpu_count()}x here, and more workers than cores "
        "only add contention. Ray's per-step overhead is one actor call per env per step "
        "(serialising the observation and the info dict).",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vec_env.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
