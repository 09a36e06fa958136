"""``make demo``: the real operator running real elastic training jobs on the sandbox.

``python -m elastrain_dev.demo`` starts the sandbox and the operator as subprocesses, submits a DDP
job and a parameter-server job, shows them live, kills one worker's training process mid-run,
and waits for both jobs to recover and succeed. Every figure it prints is read back from the
running system (TrainingJob status, pod logs, the trainer's metrics endpoint), never computed
by the demo itself. ``docs/demo.md`` is the user-facing description.
"""
