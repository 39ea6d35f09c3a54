from hypothesis import given
from hypothesis import strategies as st

from allocator import rules
from allocator.rules import Quota

operations = st.lists(
    st.tuples(
        st.sampled_from(["hold", "commit", "release"]),
        st.integers(min_value=1, max_value=5),
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=60,
)


@given(limit=st.integers(min_value=0, max_value=20), ops=operations)
def test_the_ledger_never_passes_its_limit_and_gives_everything_back(limit, ops):
    ledger = {"seats": Quota(limit=limit)}
    allocations: list[list] = []  # [amount, state]
    for kind, amount, pick in ops:
        live = [a for a in allocations if a[1] != "released"]
        if kind == "hold":
            needs = {"seats": amount}
            if rules.problems(needs, ledger):
                assert ledger["seats"].in_use + amount > limit
            else:
                ledger = rules.hold(needs, ledger)
                allocations.append([amount, "held"])
        elif live:
            chosen = live[pick % len(live)]
            if kind == "commit" and chosen[1] == "held":
                ledger = rules.commit({"seats": chosen[0]}, ledger)
                chosen[1] = "committed"
            elif kind == "release":
                committed = chosen[1] == "committed"
                ledger = rules.release({"seats": chosen[0]}, ledger, committed=committed)
                chosen[1] = "released"
        quota = ledger["seats"]
        assert 0 <= quota.in_use <= limit
        assert quota.held == sum(a for a, state in allocations if state == "held")
        assert quota.committed == sum(a for a, state in allocations if state == "committed")
    for amount, state in allocations:
        if state != "released":
            ledger = rules.release({"seats": amount}, ledger, committed=state == "committed")
    assert ledger["seats"] == Quota(limit=limit)


@given(amount=st.integers(min_value=1, max_value=100))
def test_a_dimension_without_quota_is_not_limited(amount):
    assert rules.problems({"vcpu": amount}, {}) == []


def test_a_refusal_names_its_dimension_and_code():
    [problem] = rules.problems({"seats": 3}, {"seats": Quota(limit=10, held=5, committed=3)})
    assert problem.code == "quota_exceeded" and problem.field == "seats"
    assert rules.warnings({"seats": 1}, {"seats": Quota(limit=10, warning=8, held=8)}) == ["seats"]
