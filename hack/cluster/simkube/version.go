package main

// kubernetesVersion is the k8s.io/kubernetes release this binary is built from;
// build.sh checks it against go.mod.
const kubernetesVersion = "v1.36.1"
