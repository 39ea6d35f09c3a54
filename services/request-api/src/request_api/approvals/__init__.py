"""Multi-stage approvals: the stages a request waits in, who decides them, and the clock that
escalates and auto-denies stages left undecided."""
