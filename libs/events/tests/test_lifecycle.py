from events.contracts import ALL_EVENTS
from events.contracts.allocation import AllocationFailed, AllocationReleased
from events.contracts.lifecycle import MOVES, end_of_refusal, may_move, may_move_from
from events.contracts.requests import CancellationRequested, CompensationRetryRequested
from events.contracts.validation import ValidationFailed


def test_status_only_moves_forward():
    assert may_move("submitted", "validated")
    assert may_move("validated", "configured")
    assert may_move("configured", "verified")
    assert not may_move("configured", "allocated")


def test_terminal_statuses_are_final():
    assert may_move("allocated", "failed")
    assert not may_move("completed", "failed")
    assert not may_move("rejected", "validated")
    assert not may_move("rolled_back", "compensating")


def test_undoing_ends_only_in_rolled_back_or_compensation_failed():
    assert may_move("deployed", "compensating")
    assert may_move("compensating", "rolled_back")
    assert may_move("compensating", "compensation_failed")
    assert not may_move("compensating", "completed")
    assert not may_move("compensating", "verified")


def test_statuses_a_status_may_replace():
    assert may_move_from("allocated") == {
        "submitted",
        "awaiting_approval",
        "validated",
        "backordered",
    }
    assert "compensating" in may_move_from("rolled_back")
    assert "compensating" not in may_move_from("failed")


def test_every_move_is_caused_by_a_contract_event():
    types = {cls.type for cls in ALL_EVENTS}
    assert set(MOVES) <= types
    for cause, move in MOVES.items():
        assert move.usually_from is None or may_move(move.usually_from, move.to, cause=cause)


def test_a_cancel_ends_only_a_request_awaiting_approval():
    cause = CancellationRequested.type
    assert may_move("awaiting_approval", "cancelled", cause=cause)
    assert not may_move("allocated", "cancelled", cause=cause)
    # Cancelled in flight, the undo it starts ends it.
    assert may_move("compensating", "cancelled", cause=AllocationReleased.type)


def test_only_an_operators_retry_leaves_compensation_failed():
    retry = CompensationRetryRequested.type
    assert may_move("compensation_failed", "compensating", cause=retry)
    assert not may_move("compensation_failed", "compensating")
    assert not may_move("rolled_back", "compensating", cause=retry)
    assert may_move_from("compensating", cause=retry) >= {"compensation_failed"}


def test_a_clean_refusal_fails_and_an_error_rolls_back():
    assert end_of_refusal("quota_exceeded") == "failed"
    assert end_of_refusal("internal") == "rolled_back"
    assert end_of_refusal(None) == "rolled_back"
    assert end_of_refusal("quota_exceeded", cancel_requested=True) == "cancelled"


def test_what_each_refusal_may_end_in_is_in_the_table():
    for cause in (ValidationFailed.type, AllocationFailed.type):
        for code, cancelled in (("quota_exceeded", False), ("internal", False), (None, True)):
            assert end_of_refusal(code, cancel_requested=cancelled) in MOVES[cause].ends
