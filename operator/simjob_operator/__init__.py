"""SimJob operator: runs SimJob custom resources on Kubernetes or Slurm.

The package is imported as ``simjob_operator`` (the folder ``operator/`` is only
a source root, so that nothing shadows the stdlib ``operator`` module).
Start it with ``kopf run -m simjob_operator.main``.
"""

__version__ = "0.1.0"
