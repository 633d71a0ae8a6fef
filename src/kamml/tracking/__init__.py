"""kamml.tracking."""
