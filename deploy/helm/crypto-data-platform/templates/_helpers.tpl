{{/*
Names
*/}}
{{- define "cdp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: <fullname>-<component>, kept within 63 characters. */}}
{{- define "cdp.componentName" -}}
{{- $full := include "cdp.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-" -}}
{{- printf "%s-%s" $full .component -}}
{{- end -}}

{{- define "cdp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels
*/}}
{{- define "cdp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cdp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cdp.labels" -}}
helm.sh/chart: {{ include "cdp.chart" . }}
{{ include "cdp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "cdp.name" . }}
{{- end -}}

{{/* Labels of one component: call with (dict "root" $ "component" "webserver"). */}}
{{- define "cdp.componentLabels" -}}
{{ include "cdp.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cdp.componentSelectorLabels" -}}
{{ include "cdp.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Image
*/}}
{{/* An image reference: call with (dict "image" <repository, tag, digest> "tag" <default tag>); the digest wins. */}}
{{- define "cdp.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .tag .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Dagster image; its tag defaults to the chart's appVersion. */}}
{{- define "cdp.image" -}}
{{- include "cdp.imageRef" (dict "image" .Values.image "tag" .Chart.AppVersion) -}}
{{- end -}}

{{/* The API gateway's image: its own repository, the Dagster image's tag by default. */}}
{{- define "cdp.gatewayImage" -}}
{{- include "cdp.imageRef" (dict "image" .Values.apiGateway.image "tag" (default .Chart.AppVersion .Values.image.tag)) -}}
{{- end -}}

{{/*
Kubernetes before 1.24 has no gRPC probes: the user-code server's probes then open its TCP port.
Call with (dict "root" $ "port" 4000).
*/}}
{{- define "cdp.grpcProbe" -}}
{{- if semverCompare ">=1.24.0-0" .root.Capabilities.KubeVersion.Version -}}
grpc:
  port: {{ .port }}
  service: DagsterApi
{{- else -}}
tcpSocket:
  port: {{ .port }}
{{- end -}}
{{- end -}}

{{/*
Service accounts and namespaces
*/}}
{{- define "cdp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cdp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cdp.jobNamespace" -}}
{{- default .Release.Namespace .Values.dagster.runLauncher.jobNamespace -}}
{{- end -}}

{{- define "cdp.runServiceAccountName" -}}
{{- default (include "cdp.serviceAccountName" .) .Values.dagster.runLauncher.serviceAccountName -}}
{{- end -}}

{{/*
Config maps and secrets (Secrets are referenced by name only; the chart never holds values).
*/}}
{{- define "cdp.instanceConfigMapName" -}}
{{- include "cdp.componentName" (dict "root" . "component" "dagster-instance") -}}
{{- end -}}

{{- define "cdp.workspaceConfigMapName" -}}
{{- include "cdp.componentName" (dict "root" . "component" "dagster-workspace") -}}
{{- end -}}

{{- define "cdp.envConfigMapName" -}}
{{- include "cdp.componentName" (dict "root" . "component" "env") -}}
{{- end -}}

{{- define "cdp.secretName" -}}
{{- default (include "cdp.componentName" (dict "root" . "component" "secrets")) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Every Secret whose keys become environment variables of the Dagster processes and runs. */}}
{{- define "cdp.envSecretNames" -}}
{{- $names := list (include "cdp.secretName" .) -}}
{{- range .Values.secrets.extraEnvFromSecrets -}}
{{- $names = append $names . -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The storage section of a dagster.yaml (mysql or postgres, the URL from the Secret's variable), as JSON. */}}
{{- define "cdp.instanceStorage" -}}
{{- $postgres := eq .Values.dagster.storage.type "postgres" -}}
{{- $url := dict (ternary "postgres_url" "mysql_url" $postgres) (dict "env" (include "cdp.storageUrlEnvVar" .)) -}}
{{- toJson (dict (ternary "postgres" "mysql" $postgres) $url) -}}
{{- end -}}

{{- define "cdp.storageUrlEnvVar" -}}
{{- if .Values.dagster.storage.urlEnvVar -}}
{{- .Values.dagster.storage.urlEnvVar -}}
{{- else if eq .Values.dagster.storage.type "postgres" -}}
DAGSTER_PG_URL
{{- else -}}
DAGSTER_MYSQL_URL
{{- end -}}
{{- end -}}

{{/*
Paths inside the image
*/}}
{{- define "cdp.workspacePath" -}}/opt/dagster/workspace/workspace.yaml{{- end -}}

{{- define "cdp.userCodeHost" -}}
{{- include "cdp.componentName" (dict "root" . "component" "user-code") -}}
{{- end -}}

{{/* The public URL of the Dagster UI, used in alert links. */}}
{{- define "cdp.uiUrl" -}}
{{- if .Values.config.uiUrl -}}
{{- .Values.config.uiUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.webserver.host -}}
{{- $scheme := ternary "https" "http" (gt (len .Values.ingress.tls) 0) -}}
{{- printf "%s://%s%s" $scheme .Values.ingress.webserver.host (trimSuffix "/" .Values.webserver.pathPrefix) -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%v%s" (include "cdp.componentName" (dict "root" . "component" "webserver")) .Release.Namespace .Values.webserver.service.port (trimSuffix "/" .Values.webserver.pathPrefix) -}}
{{- end -}}
{{- end -}}

{{/*
Pod pieces shared by the Dagster processes: the writable scratch volumes (the root
filesystem is read-only), the instance's dagster.yaml and the workspace.
*/}}
{{- define "cdp.dagsterVolumes" -}}
- name: dagster-home
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: dagster-instance
  configMap:
    name: {{ include "cdp.instanceConfigMapName" . }}
- name: dagster-workspace
  configMap:
    name: {{ include "cdp.workspaceConfigMapName" . }}
{{- include "cdp.modelVolume" . }}
{{- end -}}

{{- define "cdp.dagsterVolumeMounts" -}}
- name: dagster-home
  mountPath: {{ .Values.dagster.home }}
- name: dagster-instance
  mountPath: {{ printf "%s/dagster.yaml" .Values.dagster.home }}
  subPath: dagster.yaml
  readOnly: true
- name: dagster-workspace
  mountPath: /opt/dagster/workspace
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- include "cdp.modelVolumeMount" . }}
{{- end -}}

{{- define "cdp.modelVolume" -}}
{{- with .Values.sentimentModel.volume }}
{{- if .enabled }}
- name: sentiment-model
{{- if .existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .existingClaim }}
    readOnly: {{ .readOnly }}
{{- else }}
{{ toYaml .source | indent 2 }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "cdp.modelVolumeMount" -}}
{{- with .Values.sentimentModel.volume }}
{{- if .enabled }}
- name: sentiment-model
  mountPath: {{ .mountPath }}
  readOnly: {{ .readOnly }}
{{- if .subPath }}
  subPath: {{ .subPath }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "cdp.dagsterEnv" -}}
- name: DAGSTER_HOME
  value: {{ .Values.dagster.home | quote }}
{{- end -}}

{{- define "cdp.dagsterEnvFrom" -}}
- configMapRef:
    name: {{ include "cdp.envConfigMapName" . }}
{{- range (include "cdp.envSecretNames" . | fromJsonArray) }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/* Checksums that roll the pods when their configuration changes. */}}
{{- define "cdp.configChecksums" -}}
checksum/instance: {{ include (print $.Template.BasePath "/configmap-instance.yaml") . | sha256sum }}
checksum/workspace: {{ include (print $.Template.BasePath "/configmap-workspace.yaml") . | sha256sum }}
checksum/env: {{ include (print $.Template.BasePath "/configmap-env.yaml") . | sha256sum }}
{{- end -}}

{{/* Scheduling fields of a pod: call with (dict "root" $ "values" .Values.webserver). */}}
{{- define "cdp.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}
