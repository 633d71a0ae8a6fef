"""kamml.report."""
