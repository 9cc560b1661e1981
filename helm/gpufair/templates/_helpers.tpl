{{/* Names, labels and small shared snippets of the gpufair chart. */}}

{{- define "gpufair.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpufair.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "gpufair.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "gpufair.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpufair.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; "gpufair.labels" (dict "ctx" $ "component" "operator"). */}}
{{- define "gpufair.labels" -}}
helm.sh/chart: {{ include "gpufair.chart" .ctx }}
app.kubernetes.io/name: {{ include "gpufair.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: gpufair
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (immutable once installed). */}}
{{- define "gpufair.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpufair.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Object name of one component: "<fullname>-<component>". */}}
{{- define "gpufair.componentName" -}}
{{- printf "%s-%s" (include "gpufair.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ServiceAccount name of one component: (dict "ctx" $ "component" "operator" "sa" .Values.operator.serviceAccount). */}}
{{- define "gpufair.serviceAccountName" -}}
{{- if .sa.create -}}
{{- default (include "gpufair.componentName" .) .sa.name -}}
{{- else -}}
{{- default "default" .sa.name -}}
{{- end -}}
{{- end -}}

{{/* The gpufair image. */}}
{{- define "gpufair.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secret holding the webhook's serving certificate. */}}
{{- define "gpufair.webhookSecretName" -}}
{{- if .Values.webhook.certManager.enabled -}}
{{- printf "%s-webhook-tls" (include "gpufair.fullname" .) -}}
{{- else -}}
{{- required "webhook.tls.secretName is required when webhook.certManager.enabled is false" .Values.webhook.tls.secretName -}}
{{- end -}}
{{- end -}}

{{/* The extender's URL as kube-scheduler's urlPrefix: loopback beside it, HTTPS apart. */}}
{{- define "gpufair.extenderURL" -}}
{{- if eq .Values.extender.placement "beside" -}}
{{- printf "http://127.0.0.1:%d" (int .Values.extender.port) -}}
{{- else -}}
{{- printf "https://%s.%s.svc:%d" (include "gpufair.componentName" (dict "ctx" . "component" "extender")) .Release.Namespace (int .Values.extender.port) -}}
{{- end -}}
{{- end -}}

{{/* Secrets of the extender's mutual TLS (placement apart): server side, client side. */}}
{{- define "gpufair.extenderServerSecret" -}}
{{- if .Values.extender.tls.certManager.enabled -}}
{{- printf "%s-extender-server-tls" (include "gpufair.fullname" .) -}}
{{- else -}}
{{- required "extender.tls.serverSecret is required when extender.placement is apart without cert-manager" .Values.extender.tls.serverSecret -}}
{{- end -}}
{{- end -}}
{{- define "gpufair.extenderClientSecret" -}}
{{- if .Values.extender.tls.certManager.enabled -}}
{{- printf "%s-extender-client-tls" (include "gpufair.fullname" .) -}}
{{- else -}}
{{- required "extender.tls.clientSecret is required when extender.placement is apart without cert-manager" .Values.extender.tls.clientSecret -}}
{{- end -}}
{{- end -}}


{{/* Pod-level security context shared by the gpufair containers (the image runs as 65532). */}}
{{- define "gpufair.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "gpufair.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
