//go:build tools

// Package tools pins the KWOK command in this module's go.mod so that
// build.sh can `go build sigs.k8s.io/kwok/cmd/kwok` at the same versions.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
