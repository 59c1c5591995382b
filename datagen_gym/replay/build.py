"""Fill a replay cache for a grid of generation settings (resumable).

    python -m datagen_gym.replay.build --cache replay_caches/default.replay.sqlite \\
        --templates all --focus any --temperatures 0.5:1.5 --top-ps 0.4:1.0 \\
        --replicas 3 --batch-size 64

Every key of the grid (template x focus x temperature x top_p, at the given batch size) gets
``--replicas`` replicas; keys that already hold that many are skipped, so an interrupted build
resumes where it stopped, and a larger ``--replicas`` tops a cache up. Each replica is generated
with its own seed, derived from ``--seed`` and the key and replica index, so a resumed build
writes what an uninterrupted one would have. ``--shard i/n`` builds every n-th key only, for
several processes (or machines, merged later by copying rows) on one grid; processes may share
one file. Builds on one file coordinate: a key is never filled past ``--replicas`` (the count and
the store are one transaction), and a second build of the same shard is refused while the first
runs (a ``<cache>.shard-i-of-n.lock`` file beside the cache). ``--info`` prints the manifest
and counts of a cache and exits.

Ranges are ``start:stop[:step]``, inclusive, the step defaulting to the cache's resolution (0.05);
values are rounded to the cache's grid.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence

from datagen_gym.replay.cache import CacheKey, ReplayCacheError, quantise

DEFAULT_TEMPERATURES = "0.5:1.5"  # reachable in 10 steps of +-0.05 from the default start 1.0
DEFAULT_TOP_PS = "0.4:1.0"  # ... and from top_p 0.9 (capped at 1.0)


def parse_values(spec: str, resolution: float, name: str) -> list[int]:
    """Grid indices of ``a,b,c`` or ``start:stop[:step]`` (inclusive)."""
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else resolution
            if step <= 0 or stop < start:
                raise ValueError
            lo, hi = quantise(start, resolution), quantise(stop, resolution)
            stride = max(1, quantise(step, resolution))
            return list(range(lo, hi + 1, stride))
        return sorted({quantise(float(x), resolution) for x in spec.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(
            f"--{name} {spec!r}: expected numbers 'a,b,c' or a range "
            "'start:stop[:step]' with start <= stop and step > 0"
        ) from None


def replica_seed(seed: int, key: CacheKey, index: int) -> int:
    """A seed per (key, replica index): stable across processes and runs (not ``hash()``)."""
    text = json.dumps(
        [seed, key.template, key.focus, key.temperature_q, key.top_p_q, key.batch_size, index]
    )
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@contextlib.contextmanager
def _shard_lock(cache: str, shard: int, n_shards: int) -> Iterator[None]:
    """One build per (cache, shard) at a time: a second one would generate the same batches
    (same seeds) only to have the store discard them. The lock is ``<cache>.shard-i-of-n.lock``
    (filelock: released by the OS when a process dies)."""
    from filelock import FileLock, Timeout

    path = f"{cache}.shard-{shard}-of-{n_shards}.lock"
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SystemExit(
            f"{cache}: another replay build of shard {shard}/{n_shards} is running on this "
            f"cache (lock {path}); wait for it, or build another --shard"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m datagen_gym.replay.build",
        description="Fill a replay cache (SQLite) with real teacher batches for a grid of "
        "settings; resumes, skipping keys that hold --replicas replicas.",
    )
    p.add_argument("--cache", required=True, help="the cache file (created if missing)")
    p.add_argument("--config", help="a Config YAML (teacher backend, generation settings)")
    p.add_argument(
        "--task",
        default=None,
        help="built-in task whose skills '--focus all' means (default: every skill "
        "of the seed tasks)",
    )
    p.add_argument(
        "--templates",
        default="all",
        help="template names, indices or globs, comma-separated: 'all' (default), "
        "'self_instruct*' (the Self-Instruct ones), 'evol_*', 'evol_breadth,0'",
    )
    p.add_argument(
        "--focus",
        default="any",
        help="comma-separated: 'any' (no focus, DataGen-v0) and/or skill names, or "
        "'all' (any + every skill, DataGen-Skills-v0); default 'any'",
    )
    p.add_argument(
        "--temperatures",
        default=DEFAULT_TEMPERATURES,
        help=f"values or start:stop[:step] (default {DEFAULT_TEMPERATURES})",
    )
    p.add_argument(
        "--top-ps",
        default=DEFAULT_TOP_PS,
        help=f"values or start:stop[:step] (default {DEFAULT_TOP_PS})",
    )
    p.add_argument("--replicas", type=int, default=3, help="replicas per key (default 3)")
    p.add_argument("--batch-size", type=int, default=64, help="records per batch (default 64)")
    p.add_argument(
        "--resolution",
        type=float,
        default=None,
        help="grid step of a new cache (default 0.05; an existing cache keeps its own)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the replicas (default 0)")
    p.add_argument("--shard", default="0/1", help="build every n-th key only: 'i/n' (0-based)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for the teacher (default: 1 for the embedded one)",
    )
    p.add_argument("--info", action="store_true", help="print the manifest and counts, exit")
    return p


def _templates(spec: str) -> list[str]:
    from datagen_gym.generators import prompts

    out: list[str] = []
    for x in (s.strip() for s in spec.split(",")):
        if x == "all" or any(c in x for c in "*?["):  # a glob: 'self_instruct*', 'evol_*'
            names = fnmatch.filter(prompts.TEMPLATE_NAMES, "*" if x == "all" else x)
            if not names:
                raise SystemExit(
                    f"--templates {x!r} matches no template; templates: "
                    f"{list(prompts.TEMPLATE_NAMES)}"
                )
            out += names
        else:
            try:
                out.append(prompts.get_template(int(x) if x.isdigit() else x).name)
            except ValueError as exc:
                raise SystemExit(f"--templates {x!r}: {exc}") from None
    return list(dict.fromkeys(out))


def _focuses(spec: str, known: Sequence[str], task: str | None) -> list[str | None]:
    if spec == "all":
        if task is not None:
            from datagen_gym.targets import task_skills

            return [None, *task_skills(task)]
        return [None, *known]
    out: list[str | None] = []
    for x in (s.strip() for s in spec.split(",")):
        if x == "any":
            out.append(None)
        elif x in known:
            out.append(x)
        else:
            raise SystemExit(
                f"--focus {x!r}: expected 'any', 'all' or a skill of the seed tasks: {list(known)}"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from datagen_gym.config import Config, ConfigError

    try:
        config = Config.load(args.config) if args.config else Config()
        if args.threads is not None:
            config = config.replace(sampling={"num_threads": args.threads})
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    try:
        shard, n_shards = (int(x) for x in args.shard.split("/"))
        if not 0 <= shard < n_shards:
            raise ValueError
    except ValueError:
        raise SystemExit(f"--shard {args.shard!r}: expected 'i/n' with 0 <= i < n") from None
    if args.replicas < 1 or args.batch_size < 1:
        raise SystemExit("--replicas and --batch-size must be >= 1")

    from tqdm import tqdm

    from datagen_gym.generators.generator import Generator
    from datagen_gym.replay.cache import ReplayCache
    from datagen_gym.replay.generator import ReplayGenerator
    from datagen_gym.replay.identity import generator_identity

    live = Generator(config)
    identity = generator_identity(live)
    try:
        cache = ReplayCache(
            args.cache, identity, resolution=args.resolution, info=identity, read_only=args.info
        )
    except ReplayCacheError as exc:
        raise SystemExit(str(exc)) from None
    if args.info:
        print(json.dumps({"manifest": cache.manifest, **cache.stats()}, indent=2))
        return 0
    res = cache.resolution
    templates = _templates(args.templates)
    focuses = _focuses(args.focus, live.pool.skills(), args.task)
    temps = [
        q
        for q in parse_values(args.temperatures, res, "temperatures")
        if 0.0 <= q * res <= 2.0 + 1e-9
    ]
    top_ps = [q for q in parse_values(args.top_ps, res, "top-ps") if 0.0 < q * res <= 1.0 + 1e-9]
    grid = [
        CacheKey(t, f, tq, pq, args.batch_size)
        for t in templates
        for f in focuses
        for tq in temps
        for pq in top_ps
    ]
    grid = grid[shard::n_shards]
    have = cache.counts()
    todo = [(key, i) for key in grid for i in range(have.get(key, 0), args.replicas)]
    print(
        f"{args.cache}: {len(grid)} keys ({len(templates)} templates x {len(focuses)} focus x "
        f"{len(temps)} temperatures x {len(top_ps)} top_p), {args.replicas} replicas of "
        f"{args.batch_size} records each; {len(todo)} batches to generate",
        file=sys.stderr,
    )
    gen = ReplayGenerator(live, cache)
    t0 = time.perf_counter()
    with _shard_lock(args.cache, shard, n_shards):
        for key, index in tqdm(todo, unit="batch", desc="replay build", file=sys.stderr):
            # Another build on the same file (another shard layout) may have filled this key
            # meanwhile; the store itself refuses to overfill it.
            if len(cache.replica_ids(key)) > index:
                continue
            live.reseed(replica_seed(args.seed, key, index))
            gen.generate_replica(key, origin="build", max_replicas=index + 1)
    stats = cache.stats()
    print(
        json.dumps(
            {**stats, "seconds": round(time.perf_counter() - t0, 1), "generated": len(todo)}
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
