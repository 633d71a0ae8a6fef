"""kamml.jobs."""
