from request_api.lifecycle import may_move


def test_status_only_moves_forward():
    assert may_move("submitted", "validated")
    assert may_move("validated", "configured")
    assert not may_move("configured", "allocated")


def test_terminal_statuses_are_final():
    assert may_move("allocated", "failed")
    assert not may_move("completed", "failed")
    assert not may_move("rejected", "validated")


def test_statuses_a_status_may_replace():
    from request_api.lifecycle import may_move_from

    assert may_move_from("allocated") == {"submitted", "validated"}
    assert may_move_from("failed") == {"submitted", "validated", "allocated", "configured"}
