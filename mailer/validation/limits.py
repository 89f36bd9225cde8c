"""The providers' limits on what a client chooses: a mail must fit every registered provider.

A mail may go through any provider (failover, or ``PROVIDERS`` changed while it waits), so its
custom headers and metadata must fit what each provider of ``providers.REGISTRY`` takes; each
provider module states its own limits (``Provider.refusal``), and a new provider brings its
own. Tags are not bounded here: the mail keeps all of them, and each provider is sent the ones
it takes (``Provider.tags_for``).
"""

import uuid

from providers import REGISTRY, Message

# Every mail's id is a UUID's text; the providers count it among what the service adds.
SAMPLE_ID = str(uuid.UUID(int=0))


def provider_problems(clean):
    """Each registered provider's refusal of the clean mail ``clean`` (``validate_mail``'s
    fields), as {"field", "message"} errors; [] when every one takes it."""
    if not clean["headers"] and not clean["metadata"]:  # most mail: nothing a client chose
        return []
    message = Message(
        id=SAMPLE_ID,
        from_address=clean["from_address"],
        to=clean["to"],
        subject=clean["subject"],
        text=clean["text"],
        html=clean["html"],
        cc=clean["cc"],
        bcc=clean["bcc"],
        reply_to=clean["reply_to"],
        headers=clean["headers"],
        tags=clean["tags"],
        metadata=clean["metadata"],
    )
    refusals = (provider.refusal(message) for provider in REGISTRY.values())
    return [{"field": field, "message": reason} for field, reason in filter(None, refusals)]
