"""The tables `create_all` made at start before migrations, exactly.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-07 20:42:50.758779
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every change of a request or resource gives it a new version (its ETag).
BUMP_VERSION = """
CREATE OR REPLACE FUNCTION bump_version() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.version := OLD.version + 1; RETURN NEW; END $$
"""
VERSIONED = ("requests", "resources")
# The activity journal: triggers on requests and resources write what webhooks and the event
# stream read, and notify the listeners.
JOURNAL = (
    """
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
    VALUES (NEW.tenant, kind, NEW.id, NEW.resource_id, jsonb_build_object(
'id', NEW.id, 'catalog_item', NEW.catalog_item, 'parameters', NEW.parameters,
'requester', NEW.requester, 'tenant', NEW.tenant, 'operation', NEW.operation,
'status', NEW.status, 'reasons', NEW.reasons, 'resource_id', NEW.resource_id,
'cancel_requested', NEW.cancel_requested_at IS NOT NULL, 'bundle_id', NEW.bundle_id,
'expires_at', NEW.expires_at, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
    RETURN NULL;
END $$
    """,
    """
CREATE OR REPLACE FUNCTION activity_of_resource() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kinds text[] := '{}';
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
                jsonb_build_object(
'id', NEW.id, 'request_id', NEW.request_id, 'catalog_item', NEW.catalog_item,
'owner', NEW.owner, 'tenant', NEW.tenant, 'state', NEW.state,
'parameters', NEW.parameters, 'outputs', NEW.outputs,
'drift', CASE WHEN jsonb_array_length(coalesce(NEW.drift, '[]')) > 0
    THEN jsonb_build_object('differences', NEW.drift, 'detected_at', NEW.drift_detected_at)
    END,
'monthly_cost', NEW.monthly_cost, 'created_at', NEW.created_at,
'retired_at', NEW.retired_at, 'expires_at', NEW.expires_at));
    END LOOP;
    RETURN NULL;
END $$
    """,
    """
CREATE OR REPLACE FUNCTION activity_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('activity', coalesce(NEW.request_id::text, ''));
    RETURN NULL;
END $$
    """,
    """
CREATE CONSTRAINT TRIGGER requests_activity
    AFTER INSERT OR UPDATE OF status, reasons ON requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION activity_of_request()
    """,
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


def upgrade() -> None:
    op.create_table(
        "event_inbox",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "event_outbox_dead_letter",
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "dead_lettered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("outbox_id"),
    )
    op.create_table(
        "activity",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "txid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
            nullable=False,
        ),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("activity_request_seq", "activity", ["request_id", "seq"], unique=False)
    op.create_index("activity_txid_seq", "activity", ["txid", "seq"], unique=False)
    op.create_table(
        "approval_stages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("catalog_item", sa.String(length=100), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deny_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("time_cap_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "position"),
    )
    op.create_index(
        "approval_stages_pending_deadlines",
        "approval_stages",
        ["escalate_at", "deny_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        op.f("ix_approval_stages_request_id"), "approval_stages", ["request_id"], unique=False
    )
    op.create_index(op.f("ix_approval_stages_status"), "approval_stages", ["status"], unique=False)
    op.create_index(op.f("ix_approval_stages_tenant"), "approval_stages", ["tenant"], unique=False)
    op.create_table(
        "bundles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("all_or_nothing", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_bundles_tenant"), "bundles", ["tenant"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("caller", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "caller", "key"),
    )
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("catalog_item", sa.String(length=100), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=200), nullable=True),
        sa.Column("bundle_id", sa.Uuid(), nullable=True),
        sa.Column("rotate_credentials", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_requests_bundle_id"), "requests", ["bundle_id"], unique=False)
    op.create_index(op.f("ix_requests_status"), "requests", ["status"], unique=False)
    op.create_index(op.f("ix_requests_tenant"), "requests", ["tenant"], unique=False)
    op.create_index("requests_by_resource", "requests", ["resource_id"], unique=False)
    op.create_index(
        "requests_tenant_created", "requests", ["tenant", "created_at", "id"], unique=False
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("catalog_item", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("monthly_cost", sa.Double(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("server_id", sa.String(length=100), nullable=False),
        sa.Column("outputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("credentials_ref", sa.String(length=200), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("drift", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("drift_detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index(op.f("ix_resources_expires_at"), "resources", ["expires_at"], unique=False)
    op.create_index(op.f("ix_resources_tenant"), "resources", ["tenant"], unique=False)
    op.create_index(
        "resources_tenant_created", "resources", ["tenant", "created_at", "id"], unique=False
    )
    op.create_table(
        "scim_groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_modified",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("scim_groups_tenant", "scim_groups", ["tenant"], unique=False)
    op.create_table(
        "scim_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("user_name", sa.String(length=300), nullable=False),
        sa.Column("user_name_key", sa.String(length=300), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=True),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("family_name", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("onboardings", sa.Integer(), nullable=False),
        sa.Column("directory_account_id", sa.Uuid(), nullable=True),
        sa.Column("access_pending", sa.Boolean(), nullable=False),
        sa.Column("request_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_modified",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "scim_users_access_pending",
        "scim_users",
        ["id"],
        unique=False,
        postgresql_where=sa.text("access_pending"),
    )
    op.create_index("scim_users_person", "scim_users", ["tenant", "person"], unique=True)
    op.create_index("scim_users_user_name", "scim_users", ["tenant", "user_name_key"], unique=True)
    op.create_table(
        "webhook_fanout_cursor",
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("last_txid", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_webhook_subscriptions_tenant"), "webhook_subscriptions", ["tenant"], unique=False
    )
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("approval_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("as_fallback", sa.Boolean(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approval_stages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("approval_id", "approver"),
    )
    op.create_index(
        op.f("ix_approval_decisions_approval_id"),
        "approval_decisions",
        ["approval_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_approval_decisions_tenant"), "approval_decisions", ["tenant"], unique=False
    )
    op.create_table(
        "scim_memberships",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["scim_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["scim_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    op.create_index(
        op.f("ix_scim_memberships_user_id"), "scim_memberships", ["user_id"], unique=False
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("activity_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["activity_seq"],
            ["activity.seq"],
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["webhook_subscriptions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "activity_seq"),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_subscription_id"),
        "webhook_deliveries",
        ["subscription_id"],
        unique=False,
    )
    op.create_index(
        "webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where="status = 'pending'",
    )

    op.execute(BUMP_VERSION)
    for table in VERSIONED:
        op.execute(
            f"CREATE OR REPLACE TRIGGER {table}_version BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bump_version()"
        )
    for statement in JOURNAL:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(
        "webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where="status = 'pending'",
    )
    op.drop_index(op.f("ix_webhook_deliveries_subscription_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_scim_memberships_user_id"), table_name="scim_memberships")
    op.drop_table("scim_memberships")
    op.drop_index(op.f("ix_approval_decisions_tenant"), table_name="approval_decisions")
    op.drop_index(op.f("ix_approval_decisions_approval_id"), table_name="approval_decisions")
    op.drop_table("approval_decisions")
    op.drop_index(op.f("ix_webhook_subscriptions_tenant"), table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.drop_table("webhook_fanout_cursor")
    op.drop_index("scim_users_user_name", table_name="scim_users")
    op.drop_index("scim_users_person", table_name="scim_users")
    op.drop_index(
        "scim_users_access_pending",
        table_name="scim_users",
        postgresql_where=sa.text("access_pending"),
    )
    op.drop_table("scim_users")
    op.drop_index("scim_groups_tenant", table_name="scim_groups")
    op.drop_table("scim_groups")
    op.drop_index("resources_tenant_created", table_name="resources")
    op.drop_index(op.f("ix_resources_tenant"), table_name="resources")
    op.drop_index(op.f("ix_resources_expires_at"), table_name="resources")
    op.drop_table("resources")
    op.drop_index("requests_tenant_created", table_name="requests")
    op.drop_index("requests_by_resource", table_name="requests")
    op.drop_index(op.f("ix_requests_tenant"), table_name="requests")
    op.drop_index(op.f("ix_requests_status"), table_name="requests")
    op.drop_index(op.f("ix_requests_bundle_id"), table_name="requests")
    op.drop_table("requests")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_bundles_tenant"), table_name="bundles")
    op.drop_table("bundles")
    op.drop_index(op.f("ix_approval_stages_tenant"), table_name="approval_stages")
    op.drop_index(op.f("ix_approval_stages_status"), table_name="approval_stages")
    op.drop_index(op.f("ix_approval_stages_request_id"), table_name="approval_stages")
    op.drop_index(
        "approval_stages_pending_deadlines",
        table_name="approval_stages",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("approval_stages")
    op.drop_index("activity_txid_seq", table_name="activity")
    op.drop_index("activity_request_seq", table_name="activity")
    op.drop_table("activity")
    op.drop_table("event_outbox_dead_letter")
    op.drop_table("event_outbox")
    op.drop_table("event_inbox")
    for function in (
        "activity_notify",
        "activity_of_resource",
        "activity_of_request",
        "bump_version",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
