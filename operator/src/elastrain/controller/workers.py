"""The reconcile workers: a few concurrent tasks draining the work queue, never two on one key.

Every outcome ends in a defined next step, so no exception from a bad job can crash the
operator or spin it: success forgets the key's back-off and schedules ``requeue_after``; a
stale status write waits for the newer job; any failure (API error, planner bug) is counted,
shown on the job as a Warning Event, and retried with per-key exponential back-off (capped).
"""

from __future__ import annotations

import asyncio
import logging
import time

from elastrain.controller.queue import WorkQueue
from elastrain.controller.reconcile import ApplyFailed, Reconciler, job_ref
from elastrain.controller.store import JobKey
from elastrain.kube import errors
from elastrain.kube.events import EventRecorder
from elastrain.metrics.registry import Metrics

log = logging.getLogger(__name__)


class Workers:
    """Owns the worker tasks; :meth:`start` after kopf's indexes exist, :meth:`stop` on cleanup."""

    def __init__(
        self,
        queue: WorkQueue[JobKey],
        reconciler: Reconciler,
        recorder: EventRecorder,
        metrics: Metrics,
        count: int,
    ) -> None:
        self.queue = queue
        self._reconciler = reconciler
        self._recorder = recorder
        self._metrics = metrics
        self._count = count
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
            for i in range(self._count)
        ]

    async def stop(self) -> None:
        """Cancel the workers; a reconcile cut short is redone from the observed state on start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.queue.close()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.process(key)
            except Exception:
                # process() handles every reconcile failure; this guards the worker itself
                # (e.g. a failing Event post) so that the pool never shrinks silently.
                log.exception("worker error on %s/%s", *key)
                self.queue.backoff(key)
            finally:
                self.queue.done(key)

    async def process(self, key: JobKey) -> None:
        """Reconcile ``key`` once and decide when it runs next."""
        started = time.perf_counter()
        try:
            outcome = await self._reconciler.reconcile(key)
        except asyncio.CancelledError:
            raise
        except ApplyFailed as exc:
            # Events (FailedCreatePod, ...) were already posted per failed child.
            self._failed(key, exc.failures[0])
        except errors.ApiError as exc:
            self._failed(key, exc)
            await self._warn(key, "ReconcileError", f"API error: {exc}")
        except Exception as exc:
            # A planner or glue bug on one job must not stop the others: log it with the
            # traceback, tell the user on the job, retry later.
            log.exception("reconcile of %s/%s failed", *key)
            self._failed(key, exc)
            await self._warn(key, "ReconcileError", f"internal error: {type(exc).__name__}: {exc}")
        else:
            if outcome.gone:
                self.queue.discard(key)
            else:
                self.queue.forget(key)
                if outcome.requeue_after is not None:
                    self.queue.add_after(key, outcome.requeue_after)
        finally:
            self._metrics.reconcile_duration.observe(time.perf_counter() - started)

    def _failed(self, key: JobKey, exc: BaseException) -> None:
        self._metrics.reconcile_errors.labels(type(exc).__name__).inc()
        delay = self.queue.backoff(key)
        log.warning("reconcile of %s/%s failed (%s); retrying in %.1fs", *key, exc, delay)

    async def _warn(self, key: JobKey, reason: str, message: str) -> None:
        job = self._reconciler.store.job(key)
        if job is not None:
            await self._recorder.record(job_ref(job), "Warning", reason, message)
