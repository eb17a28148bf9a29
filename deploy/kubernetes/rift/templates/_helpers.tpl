{{/* Names. Pods are <release>-etcd-N and <release>-kafka-N; those are also rift's node
and agent names, so `rift isolate <release>-etcd-0` names a pod. */}}
{{- define "rift.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "rift.labels" -}}
app.kubernetes.io/name: rift
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rift.tokenSecret" -}}
{{- .Values.token.existingSecret | default (printf "%s-token" (include "rift.name" .)) -}}
{{- end -}}

{{- define "rift.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* The cluster's statefulset (= headless service) name: (dict "root" $ "cluster" "etcd"). */}}
{{- define "rift.clusterName" -}}
{{- printf "%s-%s" (include "rift.name" .root) .cluster -}}
{{- end -}}

{{/* DNS name of pod N: (dict "root" $ "cluster" "etcd" "i" 0). */}}
{{- define "rift.podHost" -}}
{{- $set := include "rift.clusterName" . -}}
{{- printf "%s-%d.%s.%s.svc.%s" $set (int .i) $set .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* The same with $(POD_NAME), expanded by Kubernetes in a container's args and env. */}}
{{- define "rift.selfHost" -}}
{{- $set := include "rift.clusterName" . -}}
{{- printf "$(POD_NAME).%s.%s.svc.%s" $set .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "rift.controllerHost" -}}
{{- printf "%s-controller.%s.svc.%s" (include "rift.clusterName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "rift.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* The controller's topology: one agent per pod hosting that pod's node; the node is
recognised by its pod's DNS name (source_hosts, resolved again as pods move); each
endpoint is bound by the pod's agent on 0.0.0.0:<agent port> and forwards to the member
on 127.0.0.1:<member port> of the same pod.
(dict "root" $ "cluster" "etcd" "replicas" 3 "endpoints" (list (list name agentPort memberPort) ...)) */}}
{{- define "rift.topology" -}}
{{- $root := .root -}}
# rift controller topology for {{ include "rift.clusterName" . }}, rendered by the rift chart.
[api]
listen = "0.0.0.0:{{ $root.Values.controller.apiPort }}"
{{- range $i := until (int .replicas) }}
{{- $pod := dict "root" $root "cluster" $.cluster "i" $i }}
{{- $name := printf "%s-%d" (include "rift.clusterName" $) $i }}

[[agent]]
name = "{{ $name }}"
api = "{{ include "rift.podHost" $pod }}:{{ $root.Values.agent.apiPort }}"
nodes = ["{{ $name }}"]
{{- end }}
{{- range $i := until (int .replicas) }}
{{- $pod := dict "root" $root "cluster" $.cluster "i" $i }}

[[node]]
name = "{{ include "rift.clusterName" $ }}-{{ $i }}"
source_hosts = ["{{ include "rift.podHost" $pod }}"]
{{- range $ep := $.endpoints }}

[[node.endpoint]]
name = "{{ index $ep 0 }}"
listen = "0.0.0.0:{{ index $ep 1 }}"
upstream = "127.0.0.1:{{ index $ep 2 }}"
{{- end }}
{{- end }}
{{- end -}}

{{/* The agent sidecar of a member pod: a native sidecar (an init container that keeps
running), so it is up before the member starts, and its startup probe passes only once
it has fetched the matrix from the controller and opened its listeners.
(dict "root" $ "cluster" "etcd" "ports" (list (list name port) ...)) */}}
{{- define "rift.agentSidecar" -}}
{{- $root := .root -}}
- name: rift-agent
  image: {{ include "rift.image" $root.Values.images.rift }}
  imagePullPolicy: {{ $root.Values.images.rift.pullPolicy }}
  restartPolicy: Always
  args:
    - agent
    - --name=$(POD_NAME)
    - --controller={{ include "rift.scheme" $root }}://{{ include "rift.controllerHost" . }}:{{ $root.Values.controller.apiPort }}
    - --api-listen=0.0.0.0:{{ $root.Values.agent.apiPort }}
    - --token-file=/etc/rift/token/token
    {{- if $root.Values.tls.enabled }}
    - --tls-cert=/etc/rift/tls/tls.crt
    - --tls-key=/etc/rift/tls/tls.key
    - --tls-ca=/etc/rift/tls/ca.crt
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
  ports:
    - name: rift-api
      containerPort: {{ $root.Values.agent.apiPort }}
    {{- range $p := .ports }}
    - name: {{ index $p 0 }}
      containerPort: {{ index $p 1 }}
    {{- end }}
  startupProbe:
    tcpSocket:
      port: {{ index (index .ports 0) 1 }}
    periodSeconds: 1
    failureThreshold: 300
  volumeMounts:
    - name: rift-token
      mountPath: /etc/rift/token
      readOnly: true
    {{- if $root.Values.tls.enabled }}
    - name: rift-tls
      mountPath: /etc/rift/tls
      readOnly: true
    {{- end }}
  {{- with $root.Values.agent.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "rift.secretVolumes" -}}
- name: rift-token
  secret:
    secretName: {{ include "rift.tokenSecret" . }}
{{- if .Values.tls.enabled }}
- name: rift-tls
  secret:
    secretName: {{ required "tls.secretName is required when tls.enabled is true" .Values.tls.secretName }}
{{- end }}
{{- end -}}
