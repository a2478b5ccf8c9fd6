"""The pollers of all SlurmClusters: the Slurm backend's long-running task.

``Pollers.run`` starts one ``poller.ClusterPoller`` per SlurmCluster (and one for
any cluster a SimJob names later, through ``of``), re-lists the SlurmClusters every
``SlurmTimings.cluster_resync`` (a deleted cluster's poller stops and ``sites``
forgets it) and, once at start, tracks the job of every unfinished SimJob so that
one batched query per cluster reads them all. Used by ``backend``; neighbours:
``sites`` (the clusters and their clients), ``kube.seam.KubeApi`` (the LISTs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from simjob_operator.backends.slurm.jobs import job_id_of, login_of
from simjob_operator.backends.slurm.poller import ClusterPoller, Key
from simjob_operator.backends.slurm.sites import Site, Sites
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.phases import is_terminal
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import SlurmTimings
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi, KubeError

logger = logging.getLogger("simjob_operator.slurm")


class Pollers:
    """One ClusterPoller per SlurmCluster, by name, and the task that keeps them."""

    def __init__(
        self,
        kube: KubeApi,
        sites: Sites,
        notify: Callable[[Key], None],
        settings: SlurmTimings = SETTINGS.slurm,
    ) -> None:
        self._kube = kube
        self.sites = sites
        self._notify = notify
        self._settings = settings
        self.by_name: dict[str, ClusterPoller] = {}
        self._unstarted: list[ClusterPoller] = []
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Queue[bool] = asyncio.Queue()

    async def run(self) -> None:
        """Pollers, the SlurmCluster resync and the start-up tracking, until ``stop``."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for poller in self._unstarted:
                group.create_task(poller.run(), name=f"slurm-poller-{poller.name}")
            self._unstarted.clear()
            await self._track_existing()
            while True:
                await self._resync()
                try:
                    if await asyncio.wait_for(self._stop.get(), self._settings.cluster_resync):
                        break
                except TimeoutError:
                    continue
            self._group = None
            for poller in self.by_name.values():
                poller.stop()
        await self.sites.close()

    def stop(self) -> None:
        self._stop.put_nowait(True)

    def of(self, site: Site) -> ClusterPoller:
        """The poller of ``site`` (created and started on first use)."""
        poller = self.by_name.get(site.name)
        if poller is None:
            poller = ClusterPoller(
                site.name,
                sites=self.sites,
                kube=self._kube,
                notify=self._notify,
                interval=site.spec.poll_interval_seconds,
                settings=self._settings,
            )
            self.by_name[site.name] = poller
            if self._group is not None:
                self._group.create_task(poller.run(), name=f"slurm-poller-{site.name}")
            else:
                self._unstarted.append(poller)
        poller.interval = site.spec.poll_interval_seconds
        return poller

    async def _resync(self) -> None:
        try:
            bodies = await self._kube.list_slurmclusters()
        except KubeError as exc:
            logger.warning("listing SlurmClusters failed (retrying): %s", exc.message)
            return
        except Exception:  # e.g. the API server unreachable: the task must live on
            logger.exception("listing SlurmClusters failed (retrying)")
            return
        self.sites.replace_all(bodies)
        for site in self.sites.known():
            self.of(site)  # every cluster shows whether it is reachable
        for name in [name for name in self.by_name if self.sites.cached(name) is None]:
            logger.info("[SlurmCluster %s] deleted; its poller stops", name)
            self.by_name.pop(name).stop()
            self.sites.forget(name)

    async def _track_existing(self) -> None:
        """After a start: poll the jobs of every unfinished SimJob at once."""
        try:
            bodies = await self._kube.list_simjobs()
        except KubeError as exc:  # the reconciles track their jobs anyway, one at a time
            logger.warning("listing SimJobs to track their Slurm jobs failed: %s", exc.message)
            return
        except Exception:
            logger.exception("listing SimJobs to track their Slurm jobs failed")
            return
        for body in bodies:
            record = SimJobRecord.from_body(body)
            job_id = job_id_of(record)
            slurm = record.spec.slurm if record.spec is not None else None
            if job_id is None or slurm is None or is_terminal(record.phase):
                continue
            try:
                site = await self.sites.get(slurm.cluster)
            except KubeError as exc:
                simjob_logger(record).warning("reading SlurmCluster failed: %s", exc.message)
                continue
            if site is not None:
                self.of(site).track(login_of(record), job_id, record.key)
