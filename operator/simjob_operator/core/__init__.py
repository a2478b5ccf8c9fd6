"""Pure code: the phase machine, slots, validation, statuses, the parsed SimJob.

No kubernetes, kopf or asyncssh imports and no I/O (an import-linter contract
checks it): everything here is unit-tested without a cluster. Above ``api``;
used by ``backends`` and ``controller``.
"""
