import uuid

from events.contracts import ALL_EVENTS
from events.contracts.requests import RequestSubmitted
from events.envelope import Envelope
from events.topics import ALL_TOPICS, EVENT_TOPICS


def test_envelope_is_cloudevents_with_the_request_as_subject():
    event = RequestSubmitted(
        request_id=uuid.uuid4(),
        catalog_item="postgres_schema",
        parameters={"name": "abc"},
        requester="ci",
    )
    envelope = Envelope.wrap(event, source="request-api")
    decoded = Envelope.model_validate_json(envelope.to_bytes())
    assert decoded.specversion == "1.0"
    assert decoded.type == "request.submitted"
    assert decoded.subject == str(event.request_id)
    assert decoded.datacontenttype == "application/json"
    assert RequestSubmitted.model_validate(decoded.data) == event


def test_every_event_has_a_unique_type_and_a_known_topic():
    types = [cls.type for cls in ALL_EVENTS]
    assert len(types) == len(set(types))
    assert all(cls.topic in EVENT_TOPICS for cls in ALL_EVENTS)
    assert set(EVENT_TOPICS) <= set(ALL_TOPICS)
