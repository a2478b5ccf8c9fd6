"""Expired SSH certificates: what a SlurmCluster and its SimJobs show until renewal.

One ``CredentialWatch`` per ``poller.ClusterPoller``. A login (the cluster's own
credentials or a SimJob's Secret) whose certificate has expired — the login node
refused it (``slurm_bridge.CredentialsExpired``), or our clock is past its
``validBefore`` — has a *problem*: a message naming the Secret and the moment, read by
``backend.observe`` so that the login's unfinished SimJobs show the reason
``CredentialsExpired`` (their phase stays: the Slurm jobs keep running, nothing is
resubmitted). The poller reports each query's outcome (``failed``, ``answered``); a
change of a login's problem wakes that login's SimJobs (``notify``). ``show`` hands
the cluster's own certificate and its problem to ``reachability.Reachability`` for
``status.certificate`` and the ``CredentialsExpired`` condition. Renewal needs nothing
here: ``sites.Sites`` re-reads an expired credential's Secret at every use, the next
poll logs in with the new certificate and ``answered`` clears the problem.
Neighbours: ``poller`` (its owner), ``sites`` (``Sites.certificate``), ``reachability``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from simjob_operator.backends.slurm.reachability import Reachability, certificate_status
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Certificate, Login, Sites
from simjob_operator.core.times import format_time
from slurm_bridge import CredentialsExpired

logger = logging.getLogger("simjob_operator.slurm")
Key = tuple[str, str]
AFTERWARDS = (
    "running Slurm jobs keep running; their state is read again, and nothing is "
    "resubmitted, once the Secret holds a renewed certificate"
)


def expired_message(certificate: Certificate | None, detail: str, now: datetime) -> str:
    """Why a login cannot be used, for the SimJob and the SlurmCluster. Pure."""
    if certificate is None:
        return f"the SSH certificate was refused as expired ({detail}); {AFTERWARDS}"
    validity = certificate.validity
    if validity.not_yet_valid(now):
        when = f"is not valid before {format_time(validity.valid_after or now)}"
    else:
        when = f"expired at {format_time(validity.valid_before or now)}"
    return (
        f"the SSH certificate {validity.key_id!r} in Secret {certificate.secret} {when}; "
        f"renew it in the Secret ({AFTERWARDS})"
    )


class CredentialWatch:
    """The credential problems of one SlurmCluster's logins."""

    def __init__(
        self,
        cluster: str,
        sites: Sites,
        notify: Callable[[Key], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cluster = cluster
        self._sites = sites
        self._notify = notify
        self._now = now
        self._refused: dict[Login, str] = {}  # login -> the server's refusal

    def problem(self, login: Login) -> str | None:
        """Why ``login``'s certificate cannot be used now, or None."""
        certificate = self._sites.certificate(self.cluster, login)
        now = self._now()
        if login in self._refused:
            return expired_message(certificate, self._refused[login], now)
        if certificate is not None and certificate.expired(now):
            return expired_message(certificate, "", now)
        return None

    def failed(self, login: Login, error: Exception, keys: Iterable[Key]) -> None:
        """A call for ``login`` raised ``error``; an expired certificate becomes a problem."""
        if not isinstance(error, CredentialsExpired):
            return
        new = login not in self._refused
        self._refused[login] = error.message
        if new:
            logger.warning("[SlurmCluster %s] %s: %s", self.cluster, login, self.problem(login))
            for key in keys:
                self._notify(key)

    def answered(self, login: Login, keys: Iterable[Key]) -> None:
        """A call for ``login`` succeeded: a renewed certificate ends its problem."""
        if self._refused.pop(login, None) is not None:
            logger.info("[SlurmCluster %s] %s: the credential works again", self.cluster, login)
            for key in keys:
                self._notify(key)

    def show(self, reachability: Reachability) -> None:
        """The cluster's own certificate and its problem, for its status."""
        certificate = self._sites.certificate(self.cluster, DEFAULT_LOGIN)
        if certificate is None:
            reachability.certificate_seen(None, None)
            return
        validity = certificate.validity
        status = certificate_status(
            certificate.secret,
            validity.key_id,
            validity.principals,
            validity.valid_after,
            validity.valid_before,
        )
        reachability.certificate_seen(status, self.problem(DEFAULT_LOGIN))
