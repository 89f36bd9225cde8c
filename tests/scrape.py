"""Reading a Prometheus scrape: every sample, and one sample's value."""

from prometheus_client.parser import text_string_to_metric_families


def parse(text):
    """Every sample of a scrape: {(name, frozenset of label pairs): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    """One sample's value, 0 if the scrape does not have it."""
    return samples.get((name, frozenset(labels.items())), 0.0)
