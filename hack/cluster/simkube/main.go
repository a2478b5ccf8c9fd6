// Command simkube is a multi-call binary holding the parts of a local
// Kubernetes control plane that SimJob's tests run against: an embedded etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kubectl, all from
// one pinned k8s.io/kubernetes release (see ../go.mod); plus the real node's
// kubelet and kube-proxy from the same release (hack/node/up.sh runs them).
//
// Usage: simkube <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy|version> [flags]
// The sibling program KWOK (sigs.k8s.io/kwok/cmd/kwok) is built separately
// from the same go.mod by hack/cluster/build.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // CronJob time zones, as in the upstream mains

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "simkube" {
		if len(args) == 0 {
			usage()
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Args = append([]string{name}, args...)
	os.Exit(run(name, args))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: simkube <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy|version> [flags]")
}

func run(name string, args []string) int {
	var command *cobra.Command
	switch name {
	case "etcd":
		return runEtcd(args)
	case "kube-apiserver":
		command = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		command = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		command = scheduler.NewSchedulerCommand()
	case "kubelet":
		command = kubelet.NewKubeletCommand(context.Background())
	case "kube-proxy":
		command = proxy.NewProxyCommand()
	case "kubectl":
		command = kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return 0
	case "version":
		fmt.Println(kubernetesVersion)
		return 0
	default:
		usage()
		return 2
	}
	return cli.Run(command)
}
