"""Real Snakemake on several project directories in one process (the suite's config refusals).

    python tests/snakemake_batch.py OUT.json PROJECT...

Each project is run as `snakemake --cores 1` would run it, through Snakemake's own API
(`SnakemakeApi` -> workflow -> dag -> execute_workflow), one after the other; OUT.json
maps each project to {"refused": bool, "message": str}: whether Snakemake stopped with an
error, and its message. One interpreter start and one import of Snakemake and ssmflow
serve every project, instead of one `snakemake` process each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings


def run(project: Path) -> dict:
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=project / "Snakefile", workdir=project)
            workflow.dag().execute_workflow()
    except Exception as err:  # noqa: BLE001 - whatever stops Snakemake is the result
        return {"refused": True, "message": f"{type(err).__name__}: {err}"}
    return {"refused": False, "message": ""}


def main(argv: list[str]) -> int:
    out, projects = Path(argv[0]), [Path(p).resolve() for p in argv[1:]]
    out.write_text(json.dumps({str(p): run(p) for p in projects}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
