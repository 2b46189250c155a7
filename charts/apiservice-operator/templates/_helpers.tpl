{{/* Name of the chart, or nameOverride. */}}
{{- define "apiservice-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, or RELEASE-CHART with the chart name left out when
the release name already contains it.
*/}}
{{- define "apiservice-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pod; they never change after the first install. */}}
{{- define "apiservice-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apiservice-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object that the chart creates. */}}
{{- define "apiservice-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "apiservice-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: apiservice-operator
{{- end }}

{{/* The operator image, tagged with the chart's appVersion unless image.tag is set. */}}
{{- define "apiservice-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC rules for the namespaced objects that the operator and Kopf read and write. They go into the
ClusterRole when the operator watches every namespace, and into one Role a namespace otherwise.
manifests/rbac.yaml holds the same rules, and tests/unit/test_rbac.py checks both against the API
calls in the code.
*/}}
{{- define "apiservice-operator.namespacedRules" -}}
# Kopf lists and watches ApiServices, and keeps its handler state in their annotations.
- apiGroups: ["apiservice.dev"]
  resources: ["apiservices"]
  verbs: ["list", "watch", "patch"]
# The operator writes the conditions, replica counts and URL.
- apiGroups: ["apiservice.dev"]
  resources: ["apiservices/status"]
  verbs: ["patch"]
# The children of every ApiService: watched into Kopf indices, applied server-side (which needs
# create for a new object), pruned when the spec drops them, and read back once for the
# credentials Secret. Every Secret and ConfigMap is also watched, because an ApiService reacts to
# changes of those that its spec names; only digests of their values are kept.
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims", "secrets", "services"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
# Kopf posts the operator's Events as core v1 Events.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* RBAC rules for cluster-scoped objects, which only a ClusterRole can grant. */}}
{{- define "apiservice-operator.clusterRules" -}}
# Kopf watches CRDs to notice when the ApiService CRD is installed, upgraded or removed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# Kopf watches namespaces when it serves a list of them, to notice one that is created later.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
