"""kamml.evaluation."""
