"""The Kubernetes backend: one batch/v1 Job per SimJob (``backend``, ``manifests``)."""
