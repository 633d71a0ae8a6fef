"""kamml.models."""
