"""Provisioning: the Ansible inventory from the plan, ansible-runner, and the testinfra verify run."""
