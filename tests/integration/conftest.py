from tests.cloud_expert.conftest import pg_schema_url

__all__ = ["pg_schema_url"]
