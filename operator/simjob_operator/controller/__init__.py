"""The controller: kopf handlers, the runtime, the work queue, the reconciler, the
admitter and the recorder — the only layer with effects on SimJobs (status writes,
Events). The top layer: ``api`` < ``core`` < ``kube`` < ``backends`` < ``controller``.
"""
