"""Shared pieces for the sandbox tests: a small CRD exercising every CRD feature, and polling."""

from __future__ import annotations

from collections.abc import Callable

import pytest

# Status + scale subresources, printer columns (incl. a priority-1 one), a default, an enum and
# a CEL rule: what the sandbox must honour for the TrainingJob CRD, in miniature.
WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.test
spec:
  group: example.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.replicas <= self.maxReplicas"
              message: "replicas must not exceed maxReplicas"
            properties:
              replicas: {type: integer, minimum: 0, default: 1}
              maxReplicas: {type: integer, default: 10}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              replicas: {type: integer}
              phase: {type: string}
              selector: {type: string}
"""


def _widget(name: str, replicas: int = 2, color: str = "red", labels: str = "app: demo") -> str:
    return f"""
apiVersion: example.test/v1
kind: Widget
metadata:
  name: {name}
  labels: {{{labels}}}
spec: {{replicas: {replicas}, color: {color}}}
"""


@pytest.fixture(scope="session")
def widget_crd() -> str:
    return WIDGET_CRD


@pytest.fixture(scope="session")
def widget() -> Callable[..., str]:
    """``widget(name, replicas=2, color="red", labels="app: demo")`` -> a Widget manifest."""
    return _widget
