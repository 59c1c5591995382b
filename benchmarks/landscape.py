"""The landscape: the default task's final metric for fixed settings over a grid.

    python -m benchmarks.landscape [--steps 10] [--seeds 0 1 2] [--workers 2]

Each cell runs whole DataGen-v0 episodes that keep one temperature / top_p / template (the
"keep" action every step) and records the final metric. It writes a Markdown table and a PNG of
heatmaps (temperature x top_p, one panel per template) under benchmarks/results/, with the
spread between the best and the worst configuration and the seed-to-seed noise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def run_cell(args: tuple) -> dict:
    temperature, top_p, template, seed, steps, batch_size, task = args
    import torch

    torch.set_num_threads(1)
    from datagen_gym import Config
    from datagen_gym.envs import DataGenEnv
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    cfg = Config.from_dict(
        {
            "sampling": {"temperature": temperature, "top_p": top_p},
            "generation": {"template": template},
        }
    )
    env = DataGenEnv(config=cfg, batch_size=batch_size, num_iterations=steps, task=task)
    env.reset(seed=seed)
    keep = np.array([1, 1, TEMPLATE_NAMES.index(template)])
    corr, kept = [], []
    for _ in range(steps):
        _, _, _, _, info = env.step(keep)
        if not np.isnan(info["correctness"]):
            corr.append(info["correctness"])
        kept.append(info["kept_fraction"])
    return {
        "temperature": temperature,
        "top_p": top_p,
        "template": template,
        "seed": seed,
        "metric": info["metric"],
        "baseline": info["baseline_metric"],
        "correctness": float(np.mean(corr)) if corr else float("nan"),
        "kept_fraction": float(np.mean(kept)),
        "records": info["dataset_size"],
    }


def main(argv: list[str] | None = None) -> None:
    from datagen_gym import Config
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.2, 0.5, 0.8, 1.1, 1.4])
    parser.add_argument("--top-ps", type=float, nargs="+", default=[0.7, 1.0])
    parser.add_argument("--templates", nargs="+", default=list(TEMPLATE_NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    cells = list(itertools.product(args.temperatures, args.top_ps, args.templates, args.seeds))
    jobs = [c + (args.steps, args.batch_size, args.task) for c in cells]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = []
        for i, row in enumerate(pool.map(run_cell, jobs, chunksize=2), start=1):
            rows.append(row)
            if i % 10 == 0:
                print(f"{i}/{len(jobs)} cells, {time.perf_counter() - start:.0f}s", flush=True)
    elapsed = time.perf_counter() - start

    by_cfg: dict[tuple, list[dict]] = {}
    for r in rows:
        by_cfg.setdefault((r["temperature"], r["top_p"], r["template"]), []).append(r)
    summary = []
    for (t, p, tpl), rs in by_cfg.items():
        m = [r["metric"] for r in rs]
        summary.append(
            {
                "temperature": t,
                "top_p": p,
                "template": tpl,
                "mean": statistics.mean(m),
                "std": statistics.pstdev(m),
                "correctness": statistics.mean(r["correctness"] for r in rs),
                "kept": statistics.mean(r["kept_fraction"] for r in rs),
                "records": statistics.mean(r["records"] for r in rs),
            }
        )
    summary.sort(key=lambda s: -s["mean"])
    best, worst = summary[0], summary[-1]
    noise = statistics.mean(s["std"] for s in summary)
    default = Config()
    start_cfg = (default.sampling.temperature, default.sampling.top_p, default.generation.template)
    start_row = next(
        (s for s in summary if (s["temperature"], s["top_p"], s["template"]) == start_cfg), None
    )
    baseline = rows[0]["baseline"]

    lines = [
        f"# Landscape of DataGen-v0 (task `{args.task}`)",
        "",
        f"`python -m benchmarks.landscape --temperatures {' '.join(map(str, args.temperatures))} "
        f"--top-ps {' '.join(map(str, args.top_ps))} --templates {' '.join(args.templates)} "
        f"--steps {args.steps} --batch-size {args.batch_size} --task {args.task} "
        f"--seeds {' '.join(map(str, args.seeds))} --workers {args.workers}` "
        f"({len(jobs)} episodes, {elapsed / 60:.1f} min on {os.cpu_count()} cores).",
        "",
        f"Final accuracy after {args.steps} steps of {args.batch_size} records with fixed "
        f"settings; mean and standard deviation over {len(args.seeds)} seeds. Baseline (seed "
        f"tasks only): {baseline:.3f}.",
        "",
        f"- best: T={best['temperature']}, top_p={best['top_p']}, `{best['template']}`: "
        f"{best['mean']:.3f} ± {best['std']:.3f}",
        f"- worst: T={worst['temperature']}, top_p={worst['top_p']}, `{worst['template']}`: "
        f"{worst['mean']:.3f} ± {worst['std']:.3f}",
        f"- spread best - worst: **{best['mean'] - worst['mean']:.3f}**; seed-to-seed noise "
        f"(mean std over configurations): **{noise:.3f}**",
    ]
    if start_row:
        lines.append(
            f"- the starting configuration (T={start_cfg[0]}, top_p={start_cfg[1]}, "
            f"`{start_cfg[2]}`) is on the grid: {start_row['mean']:.3f} ± "
            f"{start_row['std']:.3f} (rank {summary.index(start_row) + 1} of "
            f"{len(summary)})"
        )
    lines += [
        "",
        "![landscape](landscape.png)",
        "",
        "| rank | temperature | top_p | template | accuracy | std | correctness | kept | records |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(summary, start=1):
        lines.append(
            f"| {i} | {s['temperature']} | {s['top_p']} | {s['template']} | "
            f"{s['mean']:.3f} | {s['std']:.3f} | {s['correctness']:.2f} | "
            f"{s['kept']:.2f} | {s['records']:.0f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "landscape.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "landscape.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines[:12]))
    plot(summary, args, baseline)


def plot(summary: list[dict], args, baseline: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps, tops = sorted(args.temperatures), sorted(args.top_ps)
    n = len(args.templates)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False, layout="constrained"
    )
    lookup = {(s["temperature"], s["top_p"], s["template"]): s["mean"] for s in summary}
    vmin, vmax = min(lookup.values()), max(lookup.values())
    for ax, tpl in zip(axes.flat, args.templates):
        grid = np.array([[lookup[(t, p, tpl)] for t in temps] for p in tops])
        im = ax.imshow(grid, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_title(tpl, fontsize=8)
        ax.set_xticks(range(len(temps)), [str(t) for t in temps], fontsize=7)
        ax.set_yticks(range(len(tops)), [str(p) for p in tops], fontsize=7)
        ax.set_xlabel("temperature", fontsize=7)
        ax.set_ylabel("top_p", fontsize=7)
        for i in range(len(tops)):
            for j in range(len(temps)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="final accuracy")
    fig.suptitle(f"DataGen-v0 landscape, task {args.task} (baseline {baseline:.2f})")
    fig.savefig(RESULTS / "landscape.png", dpi=110)


if __name__ == "__main__":
    main()
