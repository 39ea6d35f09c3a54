"""SCIM 2.0 (RFC 7643 / 7644) for identity providers: users and groups pushed by an IdP drive
onboarding, access changes and offboarding through the provisioning pipeline."""
