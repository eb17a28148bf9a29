//go:build tools

// Pins the Helm release the test suite renders the chart with; scripts/setup.d/70-helm.sh
// builds it from this module so Helm and k8scheck share one set of Kubernetes packages.
package main

import _ "helm.sh/helm/v3/cmd/helm"
