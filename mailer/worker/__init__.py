"""The worker: the loop that claims due mail, the delivery of one mail through the providers, the
dispatch between them, the retry policy, the circuit breakers and the shared rate caps."""
