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

The triggers themselves are schema, so they live in the request-api's migrations (revision
0001 made them as they were when tables were still made at start); changing one is a new
revision that replaces the function.
"""

CHANNEL = "activity"
