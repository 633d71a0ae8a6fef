"""kamml.features."""
