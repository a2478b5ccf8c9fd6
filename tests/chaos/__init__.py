"""The fault suite (issue 10 item 4): operator kill -9 storms, API server and etcd
outages, a watch stall, slurmctld restarts and an sshd killed mid-poll, each checked for
right phases, no duplicate Job or Slurm job, no leaked slot and a surviving operator.
See docs/reliability.md and tests/chaos/conftest.py."""
