{{/* Chart name, truncated to a DNS label. */}}
{{- define "elastrain.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, suffixed with the chart name unless it already contains it. */}}
{{- define "elastrain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "elastrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elastrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "elastrain.labels" -}}
{{ include "elastrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: elastrain
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "elastrain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "elastrain.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "elastrain.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Settings that are each valid alone but not together. */}}
{{- define "elastrain.validate" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount > 1 is not supported: standalone operators would all act on the same jobs, and peered ones all run with kopf's default priority, so kopf pauses every one of them (same-priority peers). Use replicaCount 1; peering.enabled=true still keeps a rolling update from running two active operators at once." -}}
{{- end -}}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) -}}
{{- fail "metrics.port and health.port must differ" -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does inside a watched namespace (or, with a ClusterRole, in all of them).
Exactly the accesses of operator/src/elastrain/kube/access.py (tests/chart holds them equal):
it never updates pods or services, it recreates them.
*/}}
{{- define "elastrain.namespacedRules" -}}
# get: the operator confirms that an object its watch index still holds is gone (a deletion
# missed across a re-list); it never reads a job's spec any other way, and never writes one.
- apiGroups: ["elastrain.dev"]
  resources: ["trainingjobs"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["elastrain.dev"]
  resources: ["trainingjobs/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion: true; clusters that enforce
# OwnerReferencesPermissionEnforcement require update on the owner's finalizers for that.
- apiGroups: ["elastrain.dev"]
  resources: ["trainingjobs/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods", "services"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["scheduling.x-k8s.io"]
  resources: ["podgroups"]
  verbs: ["get", "list", "watch", "create", "delete"]
{{- end -}}

{{- define "elastrain.peeringVerbs" -}}
verbs: ["list", "watch", "patch"]
{{- end -}}
