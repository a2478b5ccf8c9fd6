"""Helpers shared by the tests: fakes (``fake_kube``, ``fake_slurm``, ``fake_pyslurm``),
API body builders (``bodies``), and the real-process helpers (``sshd_server``,
``slurm_env``, ``slurm_bridge_helpers``, ``slurm_hostile``, ``corpus_cases``)."""
