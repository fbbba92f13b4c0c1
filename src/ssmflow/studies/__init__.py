"""Study-specific glue: one subpackage per study, each declaring its `STUDY` (ssmflow.study).

`BUILTIN` is the registry of ssmflow's own studies (read by `ssmflow.study.registry`);
studies that live elsewhere are registered through the `SSMFLOW_STUDIES` environment variable.
"""

BUILTIN = ("dynamics", "freqbias", "icl", "s4d")
