"""kamml.allocation."""
