"""Elastrain: a Kubernetes operator for elastic distributed PyTorch training.

Layers (each a subpackage with one job):
  api       TrainingJob types, defaults, validation and the CRD schema (one source of truth)
  planner   pure functions: spec + observed children -> desired children, actions, next status
  handlers  thin kopf glue that feeds the planner and applies its actions
  kube      the Kubernetes API calls, with errors wrapped
  metrics   Prometheus metrics of the operator
  sandbox   an embedded Kubernetes API server and node agent for local runs and tests
"""

__version__ = "0.1.0"
