import pytest

from deployer.drivers.aws.ec2 import INSTANCE_TYPES, instance_type_for
from events import PermanentError


@pytest.mark.parametrize(
    ("vcpu", "ram_gb", "expected"),
    [
        (1, 1, "t3.micro"),
        (2, 1, "t3.micro"),
        (1, 2, "t3.small"),
        (2, 4, "t3.medium"),
        (2, 5, "t3.large"),
        (3, 1, "t3.xlarge"),  # vCPU decide: the next size up with 3 or more is 4 vCPU
        (4, 16, "t3.xlarge"),
        (8, 32, "t3.2xlarge"),
        (9, 8, "m5.4xlarge"),
        (16, 64, "m5.4xlarge"),  # the catalog's largest VM
    ],
)
def test_the_smallest_fitting_type_is_chosen(vcpu: int, ram_gb: int, expected: str) -> None:
    assert instance_type_for(vcpu, ram_gb) == expected


def test_every_type_fits_its_own_size_and_sizes_only_grow() -> None:
    for instance_type, vcpu, ram_gb in INSTANCE_TYPES:
        assert instance_type_for(vcpu, ram_gb) == instance_type
    sizes = [(vcpu, ram_gb) for _, vcpu, ram_gb in INSTANCE_TYPES]
    assert sizes == sorted(sizes)


@pytest.mark.parametrize(("vcpu", "ram_gb"), [(17, 1), (1, 65), (32, 128)])
def test_a_size_beyond_the_table_is_a_permanent_error(vcpu: int, ram_gb: int) -> None:
    with pytest.raises(PermanentError, match="no instance type"):
        instance_type_for(vcpu, ram_gb)
