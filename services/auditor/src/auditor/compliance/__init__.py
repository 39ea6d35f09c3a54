"""What the auditor gives compliance: a tenant's report for a period (`reports`, rendered by
`formats`) and a request's evidence pack, served by `api` to admins and auditors only."""
