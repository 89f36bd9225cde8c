"""What the service tells its operators: log lines and Prometheus metrics, for the API and the
worker."""
