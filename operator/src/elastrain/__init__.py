"""Elastrain: a Kubernetes operator for elastic distributed PyTorch training.

Layers (each a subpackage with one job; ``make lint`` holds their import direction):
  api         TrainingJob types, defaults, validation and the CRD schema (one source of truth)
  planner     pure functions: spec + observed children -> desired children, actions, next status
  controller  the controller runtime: kopf handlers, work queue, expectations, apply order
  kube        the Kubernetes API calls, with errors wrapped
  metrics     Prometheus metrics of the operator

The sandbox clusters (``elastrain_sandbox``), the developer tools (``elastrain_dev``) and the
trainer (``elastrain_trainer``) are separate packages; none of them ships in this one.
"""

__version__ = "0.1.0"
