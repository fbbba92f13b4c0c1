"""ssmflow: reproducible experiments on the learning dynamics of state space models."""

import time as _time

__version__ = "0.1.0"

# When this process first imported ssmflow: a training job's profile counts from here
# (`ssmflow.cli.job_profile`), so the imports of JAX and the study's code are in it.
IMPORTED_AT = _time.perf_counter()
