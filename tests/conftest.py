"""Repository-wide pytest configuration: the sandbox fixtures (``sandbox``, ``kubectl``...)."""

pytest_plugins = ["sandbox_fixtures"]
