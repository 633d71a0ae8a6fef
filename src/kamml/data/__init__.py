"""kamml.data."""
