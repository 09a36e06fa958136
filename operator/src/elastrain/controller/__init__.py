"""The controller runtime: kopf glue around the pure planner.

cli           ``python -m elastrain operator``: flags, logging, ``kopf.run``
handlers      the kopf handlers (module-level functions on one registry): indexes, enqueueing
app           the composition root: the Runtime the handlers read from kopf's ``memo``
workers       the reconcile workers over the work queue: back-off, error metrics, Warnings
reconcile     one reconcile: observe the indexes, ``plan()``, apply in the fixed order
queue         client-go's deduplicating work queue
expectations  hold a job until the watch has shown our own last writes
store         read access to kopf's indexes, keyed by job
settings      kopf's settings, pinned explicitly
config        the operator's configuration
"""
