"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from their Go modules by ``make control-plane`` (sandbox/controlplane/).

The embedded API server (``elastrain_sandbox.apiserver``) starts in a second and needs no Go;
this one is the reference: real admission (CEL cost, PodSecurity), real RBAC, real garbage
collection, scheduling and node lifecycle. See docs/sandbox.md, "The real control plane".
"""
