"""Compile the pipelines and run a compiled spec on one machine with ``kfp.local``.

One module per job:

- ``compile``: the pipelines to KFP v2 YAML for a platform (image, ConfigMap, Secret), and the
  check that the committed specs are what the code compiles to;
- ``local``: a run with kfp.local (subprocess or docker), the state folder and its lock;
- ``docker_launcher``: kfp.local's container launcher, fixed to report real exit codes
  (kubeflow/pipelines#13332), switched off once kfp reads them itself;
- ``events``: kfp.local's output turned into step events and a failed step's reason;
- ``remote``: submit, schedule and list runs on a KFP endpoint; ``kfp_api``: the checked
  kfp.Client connection and its errors; ``cron``: the five-field cron users write as KFP's six.
"""

from kubeline.runner.compile import PIPELINES, compile_pipelines, compiled_dir, stale_specs
from kubeline.runner.events import PIPELINE_STEPS, StepEvent
from kubeline.runner.local import RunResult, run_local, run_spec, run_training

__all__ = [
    "PIPELINES",
    "PIPELINE_STEPS",
    "RunResult",
    "StepEvent",
    "compile_pipelines",
    "compiled_dir",
    "run_local",
    "run_spec",
    "run_training",
    "stale_specs",
]
