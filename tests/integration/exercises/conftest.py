"""The API server fixture ladder of tests/integration/api (real etcd, real nestlab-apiserver)."""

from tests.integration.api.conftest import apiserver, etcd_cluster, pki  # noqa: F401 - fixtures
