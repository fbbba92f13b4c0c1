"""Where the training jobs of a run spent their wall time, from their logs.

    python bench/job_profile.py [RESULTS]        (default: results)

Each `ssmflow train` job ends its log (RESULTS/logs/<study>/<exp>/train_<shard>.log) with
one line `job profile (s): total=... import=... data=... setup=... compile=... train=...
evaluate=... write=... n_chunks=... steps=...` (`ssmflow.cli.job_profile`). This sums those
lines per study and over the run and prints each part's share of the jobs' wall time:
`train` (the engine running its chunks of steps) against the fixed costs around it
(imports, opening the data, model setup, compiling the chunk program, evaluation, the
store write), and the smallest train share of any one job.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

PARTS = ("import", "data", "setup", "compile", "train", "evaluate", "write")
_LINE = re.compile(r"job profile \(s\): (.*)$", re.M)


def parse_profile(text: str) -> dict[str, float] | None:
    """{part: seconds} of the last job profile line of a training log's text, or None."""
    lines = _LINE.findall(text)
    return {k: float(v) for k, v in (kv.split("=") for kv in lines[-1].split())} if lines else None


def steady_step_s(parts: dict[str, float]) -> float:
    """A training job's seconds per ensemble step: its chunks' seconds over their steps."""
    return parts["train"] / parts["steps"] if parts.get("steps") else float("nan")


def profiles(results: Path) -> list[tuple[str, str, dict[str, float]]]:
    """(study, job, {part: seconds}) of every training log that holds a profile line."""
    out = []
    for log in sorted((results / "logs").glob("*/*/train_*.log")):
        parts = parse_profile(log.read_text())
        if parts and "compile" in parts:  # logs of the profile line's earlier layout are skipped
            out.append((log.parts[-3], f"{log.parts[-2]}/{log.stem[len('train_'):]}", parts))
    return out


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for study, _, parts in rows:
        groups[study].append(parts)
        groups["all"].append(parts)
    head = "| study | jobs | total s | " + " | ".join(f"{p} %" for p in PARTS) + " | min train % |"
    lines = [head, "|" + "---|" * (len(PARTS) + 4)]
    for study, jobs in groups.items():
        total = sum(j["total"] for j in jobs)
        shares = [100 * sum(j[p] for j in jobs) / total for p in PARTS]
        worst = min(100 * j["train"] / j["total"] for j in jobs)
        lines.append(f"| {study} | {len(jobs)} | {total:.1f} | " + " | ".join(f"{s:.0f}" for s in shares) + f" | {worst:.0f} |")
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
