"""The string ``format`` checks the apiextensions apiserver enforces (its strfmt subset).

Unknown formats, and the numeric ones (int32, int64, float, double), are accepted without a check,
as the apiserver does for custom resources.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from datetime import date, datetime

_UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?{v}[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DURATION = re.compile(
    r"^(\s*[+-]?\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w|"
    r"nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)\s*)+$"
)
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HEXCOLOR = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_BSON = re.compile(r"^[0-9a-fA-F]{24}$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S*$|^/\S*$")


def _uuid(version: str) -> Callable[[str], bool]:
    pattern = re.compile("^" + _UUID.replace("{v}", version) + "$", re.IGNORECASE)
    return lambda s: pattern.match(s) is not None


def _date_time(s: str) -> bool:
    try:
        datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in s.upper() or " " in s


def _date(s: str) -> bool:
    try:
        date.fromisoformat(s)
    except ValueError:
        return False
    return len(s) == 10


def _ip(version: int) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        try:
            return ipaddress.ip_address(s).version == version
        except ValueError:
            return False

    return check


def _cidr(s: str) -> bool:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


def _byte(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


CHECKS: dict[str, Callable[[str], bool]] = {
    "datetime": _date_time,
    "date": _date,
    "duration": lambda s: _DURATION.match(s) is not None,
    "uuid": _uuid("[0-9a-f]"),
    "uuid3": _uuid("3"),
    "uuid4": _uuid("4"),
    "uuid5": _uuid("5"),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "byte": _byte,
    "email": lambda s: _EMAIL.match(s) is not None,
    "hostname": lambda s: _HOSTNAME.match(s) is not None,
    "uri": lambda s: _URI.match(s) is not None,
    "mac": lambda s: _MAC.match(s) is not None,
    "hexcolor": lambda s: _HEXCOLOR.match(s) is not None,
    "bsonobjectid": lambda s: _BSON.match(s) is not None,
}


def check(fmt: str, value: str) -> bool:
    """True when ``value`` satisfies ``fmt`` (always true for formats the apiserver ignores)."""
    checker = CHECKS.get(fmt.replace("-", "").replace("_", "").lower())
    return checker is None or checker(value)
