"""Where the training jobs of a run spent their wall time, from their logs.

    python bench/job_profile.py [RESULTS]        (default: results)

Each `ssmflow train` job ends its log (RESULTS/logs/<study>/<exp>/train_<shard>.log) with
one line `job profile (s): total=... import=... data=... first_chunk=... train=... other=...
write=...` (`ssmflow.cli.job_profile`). This sums those lines per study and over the run
and prints each part's share of the jobs' wall time: `train` (the engine's steady chunks)
against the fixed costs around it (imports, the first chunk's compilation, setup and
evaluation, the store write). `compile~` estimates compilation as the first chunk less one
steady chunk (where a job ran more than one chunk; else the whole first chunk).
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

PARTS = ("import", "data", "first_chunk", "train", "other", "write")
_LINE = re.compile(r"job profile \(s\): (.*)$", re.M)
_CHUNKS = re.compile(r"ran (\d+) chunks of (\d+) steps")


def parse_profile(text: str) -> dict[str, float] | None:
    """{part: seconds} of the last job profile line of a training log's text, or None."""
    lines = _LINE.findall(text)
    return {k: float(v) for k, v in (kv.split("=") for kv in lines[-1].split())} if lines else None


def steady_step_s(text: str, parts: dict[str, float]) -> float:
    """A training job's steady seconds per ensemble step: its chunks after the first (the
    profile's `train`) over their steps (the log's `ran N chunks of K steps` lines)."""
    steps = sum((int(n) - 1) * int(k) for n, k in _CHUNKS.findall(text))
    return parts["train"] / steps if steps else float("nan")


def profiles(results: Path) -> list[tuple[str, str, dict[str, float]]]:
    """(study, job, {part: seconds}) of every training log that holds a profile line."""
    out = []
    for log in sorted((results / "logs").glob("*/*/train_*.log")):
        parts = parse_profile(log.read_text())
        if parts:
            out.append((log.parts[-3], f"{log.parts[-2]}/{log.stem[len('train_'):]}", parts))
    return out


def compile_estimate(parts: dict[str, float]) -> float:
    """Compilation seconds of one job: its first chunk less one steady chunk."""
    n = parts.get("n_chunks", 0)
    return max(parts["first_chunk"] - (parts["train"] / n if n else 0.0), 0.0)


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for study, _, parts in rows:
        groups[study].append(parts)
        groups["all"].append(parts)
    head = "| study | jobs | total s | " + " | ".join(f"{p} %" for p in PARTS) + " | compile~ % | min train % |"
    lines = [head, "|" + "---|" * (len(PARTS) + 5)]
    for study, jobs in groups.items():
        total = sum(j["total"] for j in jobs)
        shares = [100 * sum(j[p] for j in jobs) / total for p in PARTS]
        worst = min(100 * j["train"] / j["total"] for j in jobs)
        comp = 100 * sum(compile_estimate(j) for j in jobs) / total
        lines.append(f"| {study} | {len(jobs)} | {total:.1f} | " + " | ".join(f"{s:.0f}" for s in shares) + f" | {comp:.0f} | {worst:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results")
    rows = profiles(results)
    if not rows:
        print(f"no training job profiles under {results}/logs", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
