import uuid

from events.contracts import ALL_EVENTS
from events.contracts.deployment import ResourceVerified
from events.contracts.requests import RequestSubmitted
from events.envelope import Envelope
from events.topics import ALL_TOPICS, EVENT_TOPICS, FOLLOWER_TOPICS


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
    assert all(cls.topic in EVENT_TOPICS + FOLLOWER_TOPICS for cls in ALL_EVENTS)
    assert set(EVENT_TOPICS + FOLLOWER_TOPICS) <= set(ALL_TOPICS)


def test_an_envelope_names_the_tenant_its_event_states_or_the_one_it_is_staged_for():
    request_id = uuid.uuid4()
    stating = RequestSubmitted(
        request_id=request_id,
        catalog_item="postgres_schema",
        parameters={},
        requester="ci",
        tenant="acme",
    )
    assert Envelope.wrap(stating, source="request-api", tenant="globex").tenant == "acme"
    silent = ResourceVerified(request_id=request_id, resource_id=uuid.uuid4())
    wrapped = Envelope.wrap(silent, source="deployer", tenant="acme")
    assert Envelope.model_validate_json(wrapped.to_bytes()).tenant_of_request() == "acme"
    assert Envelope.wrap(silent, source="deployer").tenant is None


def test_an_envelope_from_before_tenants_were_named_reads_its_data():
    old = Envelope.wrap(
        RequestSubmitted(
            request_id=uuid.uuid4(),
            catalog_item="postgres_schema",
            parameters={},
            requester="ci",
            tenant="acme",
        ),
        source="request-api",
    ).model_dump(mode="json")
    del old["tenant"]
    assert Envelope.model_validate(old).tenant_of_request() == "acme"
