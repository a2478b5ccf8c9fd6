//go:build tools

// Package tools pins the real node's container runtime and CNI plugins in this
// module's go.mod, so that build.sh can `go build` them at these versions:
// containerd 2.x (daemon, ctr, the runc shim) and the CNI plugins the node's
// bridge network uses (bridge, host-local, loopback, portmap).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
