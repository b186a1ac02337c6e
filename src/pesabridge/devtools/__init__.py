"""Real stand-ins for the outside world: a sample back office, for the demo and tests."""
