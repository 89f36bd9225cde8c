"""Delivery events: the providers' webhooks we receive (signatures, parsing), and the client
webhooks we send (the outbox and its sender)."""
