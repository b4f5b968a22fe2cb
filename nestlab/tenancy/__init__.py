"""Tenancy as a vSphere administrator runs it, seen from the outer machine: vSphere Namespaces
(a Namespace with its quota, defaults, permissions and registry project, in one command).

The API server enforces everything (quota, LimitRanger, RBAC); this package only turns a
command's options into the Kubernetes objects that express them and applies those through the
lab's API with the lab-admin credentials.
"""
