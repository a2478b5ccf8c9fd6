"""``python -m simjob_sdk.cli``: the ``simjob`` command without its console script."""

from simjob_sdk.cli import main

main()
