from request_api.lifecycle import may_move, may_move_from


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
