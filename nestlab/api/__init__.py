"""The Kubernetes-compatible API server the Supervisor control plane runs, storing objects in etcd."""
