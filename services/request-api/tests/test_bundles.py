from request_api.bundles import must_undo, roll_up


def test_a_bundle_is_in_progress_until_every_item_ends():
    assert roll_up(["completed", "allocated"], all_or_nothing=False, live_resources=1) == (
        "in_progress"
    )


def test_roll_up_without_all_or_nothing():
    assert roll_up(["completed", "completed"], all_or_nothing=False, live_resources=2) == (
        "completed"
    )
    assert roll_up(["completed", "failed"], all_or_nothing=False, live_resources=1) == (
        "partially_completed"
    )
    assert roll_up(["rejected", "failed"], all_or_nothing=False, live_resources=0) == "failed"


def test_all_or_nothing_rolls_back_what_completed():
    assert must_undo(["completed", "failed"], all_or_nothing=True)
    assert not must_undo(["completed", "failed"], all_or_nothing=False)
    assert roll_up(["completed", "failed"], all_or_nothing=True, live_resources=1) == (
        "rolling_back"
    )
    assert roll_up(["completed", "failed"], all_or_nothing=True, live_resources=0) == (
        "rolled_back"
    )
