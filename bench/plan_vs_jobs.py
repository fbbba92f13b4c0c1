"""The plan's predictions against the training jobs that ran: wall time and time per step.

    python bench/plan_vs_jobs.py PLAN_JSON [RESULTS]      (default RESULTS: results)

PLAN_JSON is the output of `ssmflow plan --json` for the config the jobs ran; RESULTS the
results folder of that run. For every planned shard whose training log holds a job
profile (RESULTS/logs/<study>/<experiment>/train_<shard>.log, `ssmflow.cli.job_profile`)
it prints the predicted and measured wall time and steady time per step (the ensemble's
step: the engine's chunks after the first, over their steps, as the log's
`ran N chunks of K steps` line gives them), with their ratios, then how many shards are
within 30 % (the issue's target for the step time) and the median and worst ratio.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_profile import profiles, steady_step_s  # noqa: E402


def measured(results: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(study, 'experiment/shard') -> the job's wall and steady step seconds."""
    out = {}
    for study, job, parts in profiles(results):
        out[(study, job)] = {"wall_s": parts["total"], "step_s": steady_step_s(parts)}
    return out


def compare(plan_rows: list[dict], jobs: dict) -> list[dict]:
    rows = []
    for r in plan_rows:
        m = jobs.get((r["study"], f"{r['experiment']}/{r['shard']}"))
        if m is None or r.get("wall_s") is None:
            continue
        rows.append({"shard": f"{r['study']}/{r['experiment']}/{r['shard']}", "runs": r["runs"],
                     "pred_wall": r["wall_s"], "wall": m["wall_s"], "pred_step": r["step_s"], "step": m["step_s"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| shard | runs | wall predicted | wall measured | ratio | step predicted (ms) | step measured (ms) | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shard']} | {r['runs']} | {r['pred_wall']:.1f} s | {r['wall']:.1f} s | "
                     f"{r['pred_wall'] / r['wall']:.2f} | {1e3 * r['pred_step']:.3g} | {1e3 * r['step']:.3g} | "
                     f"{r['pred_step'] / r['step']:.2f} |")
    for what in ("wall", "step"):
        ratios = [r[f"pred_{what}"] / r[what] for r in rows if r[what] == r[what] and r[what] > 0]
        if ratios:
            within = sum(abs(x - 1) <= 0.3 for x in ratios)
            worst = max(ratios, key=lambda x: abs(x - 1))
            lines.append(f"\n{what}: {within} of {len(ratios)} within 30 %, median ratio {statistics.median(ratios):.2f}, "
                         f"worst {worst:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    plan_rows = json.loads(Path(argv[0]).read_text())["shards"]
    results = Path(argv[1] if len(argv) > 1 else "results")
    rows = compare(plan_rows, measured(results))
    if not rows:
        print(f"no planned shard has a job profile under {results}/logs", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
