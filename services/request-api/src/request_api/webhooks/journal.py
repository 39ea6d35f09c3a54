"""The activity journal's triggers: every status change of a request (and reasons that arrive
after its end, as `request.reasons_added`), and every state or drift change of a resource,
appended to `activity` in the writing transaction, then NOTIFY.

Why triggers rather than a repository call: statuses change in many statements (the consume
loop's handlers, cancel, approval, compensation retry, the lease clock, bundles) and more will
come; a trigger cannot be forgotten by any of them, sees only changes that really happened
(an UPDATE that matched no row writes nothing, a late event that moves no status journals
no status) and commits or rolls back with the change itself (a handler's savepoint too).
`pg_notify` is delivered at commit, so a listener is woken only for rows it can already read.

The triggers are deferred to the commit (constraint triggers), where they run in the order the
changes were made: by then every row of the transaction exists, so a resource retired before
its deprovision request was inserted is journaled under that request.

The snapshot in `data` names the public fields one by one, so that a column added later
(a credentials reference, a server id) does not leak into the journal by itself.
"""

from __future__ import annotations

from sqlalchemy import DDL

CHANNEL = "activity"

_REQUEST_SNAPSHOT = """jsonb_build_object(
    'id', NEW.id, 'catalog_item', NEW.catalog_item, 'parameters', NEW.parameters,
    'requester', NEW.requester, 'tenant', NEW.tenant, 'operation', NEW.operation,
    'status', NEW.status, 'reasons', NEW.reasons, 'resource_id', NEW.resource_id,
    'cancel_requested', NEW.cancel_requested_at IS NOT NULL, 'bundle_id', NEW.bundle_id,
    'expires_at', NEW.expires_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at)"""

_RESOURCE_SNAPSHOT = """jsonb_build_object(
    'id', NEW.id, 'request_id', NEW.request_id, 'catalog_item', NEW.catalog_item,
    'owner', NEW.owner, 'tenant', NEW.tenant, 'state', NEW.state,
    'parameters', NEW.parameters, 'outputs', NEW.outputs,
    'drift', CASE WHEN jsonb_array_length(coalesce(NEW.drift, '[]')) > 0
        THEN jsonb_build_object('differences', NEW.drift, 'detected_at', NEW.drift_detected_at)
        END,
    'monthly_cost', NEW.monthly_cost, 'created_at', NEW.created_at,
    'retired_at', NEW.retired_at, 'expires_at', NEW.expires_at)"""

STATEMENTS = (
    f"""
    CREATE OR REPLACE FUNCTION activity_of_request() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        kind text := 'request.' || NEW.status;
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
            IF NEW.reasons IS NOT DISTINCT FROM OLD.reasons THEN
                RETURN NULL;
            END IF;
            -- Reasons come first when a step fails, then the status they explain, which
            -- carries them; only reasons arriving on their own (a late failure after the
            -- end) are an event of their own.
            IF EXISTS (SELECT 1 FROM requests
                       WHERE id = NEW.id AND status IS DISTINCT FROM NEW.status) THEN
                RETURN NULL;
            END IF;
            kind := 'request.reasons_added';
        END IF;
        INSERT INTO activity (tenant, type, request_id, resource_id, data)
        VALUES (NEW.tenant, kind, NEW.id, NEW.resource_id, {_REQUEST_SNAPSHOT});
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION activity_of_resource() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        kinds text[] := '{{}}';
        kind text;
        drifted boolean := jsonb_array_length(coalesce(NEW.drift, '[]')) > 0;
        current_request uuid;
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
            kinds := kinds || ('resource.' || NEW.state);
        END IF;
        IF drifted AND (TG_OP = 'INSERT' OR NEW.drift IS DISTINCT FROM OLD.drift) THEN
            kinds := kinds || 'resource.drift_detected'::text;
        ELSIF TG_OP = 'UPDATE' AND NOT drifted
                AND jsonb_array_length(coalesce(OLD.drift, '[]')) > 0 THEN
            kinds := kinds || 'resource.drift_resolved'::text;
        END IF;
        -- The request acting on the resource now (a deprovision, a modify), else its first.
        SELECT id INTO current_request FROM requests
            WHERE resource_id = NEW.id ORDER BY created_at DESC LIMIT 1;
        FOREACH kind IN ARRAY kinds LOOP
            INSERT INTO activity (tenant, type, request_id, resource_id, data)
            VALUES (NEW.tenant, kind, coalesce(current_request, NEW.request_id), NEW.id,
                    {_RESOURCE_SNAPSHOT});
        END LOOP;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION activity_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', coalesce(NEW.request_id::text, ''));
        RETURN NULL;
    END $$
    """,
    # The resource trigger looks up the request acting on a resource.
    "CREATE INDEX IF NOT EXISTS requests_by_resource ON requests (resource_id)",
    # A constraint trigger cannot be replaced: dropped and created again, in the one
    # transaction that creates the schema.
    "DROP TRIGGER IF EXISTS requests_activity ON requests",
    """
    CREATE CONSTRAINT TRIGGER requests_activity
        AFTER INSERT OR UPDATE OF status, reasons ON requests
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION activity_of_request()
    """,
    "DROP TRIGGER IF EXISTS resources_activity ON resources",
    """
    CREATE CONSTRAINT TRIGGER resources_activity
        AFTER INSERT OR UPDATE OF state, drift ON resources
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION activity_of_resource()
    """,
    """
    CREATE OR REPLACE TRIGGER activity_notify AFTER INSERT ON activity
        FOR EACH ROW EXECUTE FUNCTION activity_notify()
    """,
)


def ddl(statement: str) -> DDL:
    return DDL(statement)  # type: ignore[no-untyped-call]
