//go:build tools

// Package tools pins Helm in this module's go.mod so that hack/helm/build.sh
// builds `helm` from the Go module proxy at exactly this version. Helm lives in
// a module of its own because its k8s.io/* versions differ from the control
// plane's (hack/cluster/go.mod).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
