# ssmflow: learning dynamics of state space models, as a Snakemake workflow.
# Rules are thin: every job runs an `ssmflow ...` command (src/ssmflow/cli.py).
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from ssmflow.config import ConfigError, check_file

min_version("9.19")

# The config is one whole file: config/config.yaml, or the file given with --configfile
# (then config/config.yaml is not read at all: Snakemake would deep-merge the two, so a
# config with one experiment would also run every default one). `--config KEY=VALUE`
# still overrides single keys of whichever file is in effect.
if not workflow.overwrite_configfiles:
    # Snakemake's own YAML error names neither the file nor the line: check the file first
    try:
        check_file("config/config.yaml")
    except ConfigError as err:
        raise WorkflowError(str(err)) from None

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/study.smk"


wildcard_constraints:
    exp=r"[A-Za-z][A-Za-z0-9]*",
    shard=r"[A-Za-z0-9=_.\-]+",


# Everything the enabled studies produce: stores, metrics and figures.
rule all:
    input:
        final_outputs(),
    default_target: True
