"""Repository-wide pytest configuration: the sandbox fixtures (``sandbox``, ``kubectl``...) and
the figures section at the end of a run (``figures.report``)."""

pytest_plugins = ["sandbox_fixtures", "figures"]
