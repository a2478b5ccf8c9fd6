"""The SimJob API: pydantic models (the single source of truth), names and reasons.

The lowest layer: ``api`` < ``core`` < ``kube`` < ``backends`` < ``controller``
(import-linter contracts in ``.importlinter``, run by ``make lint``). It imports only
pydantic and PyYAML, so the SDK can use these models without the operator's
dependencies.
"""
