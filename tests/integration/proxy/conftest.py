"""The API server fixture ladder of tests/integration/api (real etcd, real nestlab-apiserver).

Imported in a conftest, not a test module: its package scope then ends with this package's tests.
"""

from tests.integration.api.conftest import apiserver, etcd_cluster, pki  # noqa: F401 - fixtures
