"""The one quantity parser: what the planner, the sandbox scheduler and the node agent rely on.

Merged from the planner's, the scheduler's and the agent's own quantity tests when their three
parsers became ``elastrain.api.quantity``; every old assertion is kept (under the new names).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from elastrain.api import quantity
from hypothesis import given
from hypothesis import strategies as st


def test_quantities_parse_exactly_and_format_plainly() -> None:
    """From the planner's tests (``parse`` there returned None for bad input)."""
    assert quantity.parse("500m") == Fraction(1, 2)
    assert quantity.parse("4Gi") == 4 * 2**30
    assert quantity.parse("1e3") == 1000
    assert quantity.parse(3) == 3
    assert quantity.parse("0.1") * 30 == 3
    assert quantity.parse_or_none("lots") is None and quantity.parse_or_none(True) is None
    assert quantity.fmt(Fraction(3, 2)) == "1500m"
    assert quantity.fmt(Fraction(1, 3000)) == "1m"  # rounded up, never under-asked
    assert quantity.fmt(Fraction(7)) == "7"


def test_agent_reads_quantities_as_floats() -> None:
    """From the agent's tests (``parse_quantity`` there)."""
    assert quantity.parse_float("1.5") == 1.5
    assert quantity.parse_float("2Gi") == 2.0 * 2**30
    assert quantity.parse_float(4) == 4.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("+1", Fraction(1)),
        ("-1", Fraction(-1)),
        ("1.", Fraction(1)),
        (".5", Fraction(1, 2)),
        ("100n", Fraction(1, 10**7)),
        ("3u", Fraction(3, 10**6)),
        ("250m", Fraction(1, 4)),
        ("2k", Fraction(2000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1T", Fraction(10**12)),
        ("1P", Fraction(10**15)),
        ("1E", Fraction(10**18)),  # exa, not an exponent
        ("1E3", Fraction(1000)),
        ("1e-3", Fraction(1, 1000)),
        ("1.5e+2", Fraction(150)),
        ("1Ki", Fraction(1024)),
        ("1Mi", Fraction(2**20)),
        ("0.5Gi", Fraction(2**29)),
        ("1Ti", Fraction(2**40)),
        ("1Pi", Fraction(2**50)),
        ("1Ei", Fraction(2**60)),
        (" 2 ", Fraction(2)),
        (0.5, Fraction(1, 2)),
        (0.1, Fraction(1, 10)),  # the number it prints as, as the API server reads JSON 0.1
        (1e-05, Fraction(1, 10**5)),
        ("0.1n", Fraction(1, 10**9)),  # finer than nano rounds away from zero, as Quantity does
        ("-0.1n", Fraction(-1, 10**9)),
        ("1.0000000001", Fraction(10**9 + 1, 10**9)),
    ],
)
def test_kubernetes_quantity_forms(text: object, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "lots", "1K", "1e", "1e3k", "1ki", "1.2.3", ".", "1 Gi", "Gi", "0x10", "nan", "inf", None],
)
def test_malformed_quantities_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        quantity.parse(text)
    assert quantity.parse_or_none(text) is None
    with pytest.raises(ValueError, match="quantities must match"):
        quantity.milli(text)
    with pytest.raises(ValueError, match="quantities must match"):
        quantity.parse_float(text)


@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_not_quantities(flag: bool) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        quantity.parse(flag)
    assert quantity.parse_or_none(flag) is None


def test_milli_rounds_up_like_milli_value() -> None:
    """What the sandbox scheduler counts with."""
    assert quantity.milli(1) == 1000
    assert quantity.milli("100m") == 100
    assert quantity.milli("1Ki") == 1024000
    assert quantity.milli("1n") == 1
    assert quantity.milli(0.1) == 100  # not 101 from the binary 0.1
    assert quantity.milli("100m") + quantity.milli("900m") == quantity.milli("1")


finite = st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**12)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_then_parse_is_identity_on_milli_units(millis: int) -> None:
    q = Fraction(millis, 1000)
    assert quantity.parse(quantity.fmt(q)) == q


@given(finite)
def test_format_never_under_asks_by_a_milli_or_more(q: Fraction) -> None:
    back = quantity.parse(quantity.fmt(q))
    assert q <= back < q + Fraction(1, 1000)
    assert quantity.parse(quantity.fmt(back)) == back


_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(_SUFFIXES))
def test_every_caller_view_agrees(number: int, suffix: str) -> None:
    """The planner's exact value, the scheduler's milli-units and the agent's float are one
    value seen three ways; and addition stays exact."""
    text = f"{number}{suffix}"
    exact = quantity.parse(text)
    assert quantity.parse_or_none(text) == exact
    assert quantity.milli(text) == -((-exact * 1000) // 1)
    assert quantity.parse_float(text) == float(exact)
    assert quantity.parse(text) + quantity.parse(text) == 2 * exact


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=-9, max_value=9))
def test_exponent_form_matches_decimal_form(mantissa: int, exponent: int) -> None:
    assert quantity.parse(f"{mantissa}e{exponent}") == mantissa * Fraction(10) ** exponent


def test_pod_requests_sum_containers_max_init_containers_add_overhead() -> None:
    """The one ``pod_requests`` of the planner (PodGroup minResources) and the scheduler."""
    pod_spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "0.75", "bad": "lots"}}},
        ],
        "initContainers": [{"resources": {"limits": {"cpu": "2", "memory": "512Mi"}}}],
        "overhead": {"memory": "1Mi"},
    }
    assert quantity.pod_requests(pod_spec) == {"cpu": 2, "memory": 2**30 + 2**20}


def test_pod_requests_limits_stand_in_only_for_missing_requests() -> None:
    pod_spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "0"}, "limits": {"cpu": "2", "nvidia.com/gpu": 1}}},
            {"resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}},
        ]
    }
    assert quantity.pod_requests(pod_spec) == {"cpu": Fraction(1, 10), "nvidia.com/gpu": 1}


def test_pod_requests_skip_what_is_no_request() -> None:
    """Bad or non-positive quantities, containers that are no object, and an empty spec."""
    pod_spec = {
        "containers": [
            "not-a-container",
            {"resources": {"requests": {"cpu": "-1", "memory": "lots", "example.com/x": "0"}}},
            {"resources": None},
            {"name": "no-resources"},
        ],
        "initContainers": None,
        "overhead": {"cpu": "bad"},
    }
    assert quantity.pod_requests(pod_spec) == {}
    assert quantity.pod_requests({}) == {}
