"""Value tests: what a Sigma value (after modifiers) means for one event value.

Each leaf value of a rule becomes a ``Spec``; the specs of one field that are OR-ed together are
merged into a single test, so ``verb: [create, update, patch]`` is one set lookup and
``userAgent|contains: [...]`` lowercases the value once. Matching follows Sigma: strings are
case-insensitive unless ``|cased``; ``*`` and ``?`` are wildcards; numbers compare as numbers
(``403`` matches ``403`` and ``"403"``); ``null`` matches a missing or null field; a regular
expression is searched (unanchored, use ``^``/``$``) and is case-sensitive unless ``|i``; a
keyword (a value without a field) is searched for inside every string of the event.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from k3watch.event import parse_time
from k3watch.rules.fields import MISSING

ValueTest = Callable[[Any], bool]


class UnsupportedValue(ValueError):
    """A Sigma value this engine cannot evaluate (reported as a rule load error)."""


# --- specs: one per Sigma value -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrSpec:
    """A string pattern. ``kind``: eq, prefix, suffix, contains, any (``*``) or glob."""

    kind: str
    text: str  # lowercased unless cased; for glob, a regular expression
    cased: bool


@dataclass(frozen=True, slots=True)
class NumSpec:
    number: float


@dataclass(frozen=True, slots=True)
class BoolSpec:
    value: bool


@dataclass(frozen=True, slots=True)
class NullSpec:
    pass


@dataclass(frozen=True, slots=True)
class CmpSpec:
    op: str  # lt, lte, gt, gte, neq
    number: float


@dataclass(frozen=True, slots=True)
class CidrSpec:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RegexSpec:
    pattern: str
    flags: int


@dataclass(frozen=True, slots=True)
class TimePartSpec:
    part: str  # minute, hour, day, week, month, year
    number: int


Spec = StrSpec | NumSpec | BoolSpec | NullSpec | CmpSpec | CidrSpec | RegexSpec | TimePartSpec

_CMP_NAMES = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def specs_from_sigma(value: SigmaType) -> list[Spec]:
    """Translate one pySigma value (after modifiers) into specs (several for an expansion)."""
    if isinstance(value, SigmaExpansion):
        return [spec for item in value.values for spec in specs_from_sigma(item)]
    if isinstance(value, SigmaString):
        return [_string_spec(value)]
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber: it is a subclass
        return [TimePartSpec(_timestamp_part_name(value.timestamp_part), int(value.number))]
    if isinstance(value, SigmaNumber):
        return [NumSpec(float(value.number))]
    if isinstance(value, SigmaBool):
        return [BoolSpec(bool(value.boolean))]
    if isinstance(value, SigmaNull):
        return [NullSpec()]
    if isinstance(value, SigmaCompareExpression):
        return [CmpSpec(_CMP_NAMES[value.op], float(value.number.number))]
    if isinstance(value, SigmaCIDRExpression):
        return [CidrSpec(value.network)]
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= _RE_FLAGS[flag]
        pattern = str(value.regexp.to_plain())
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise UnsupportedValue(f"invalid regular expression {pattern!r}: {exc}") from exc
        return [RegexSpec(pattern, flags)]
    raise UnsupportedValue(f"value type {type(value).__name__} ({value}) is not supported here")


def keyword_spec(spec: Spec) -> Spec:
    """A keyword (a value without a field) is searched for *inside* the event's strings.

    Sigma keywords are a full-text search, so ``mimikatz`` matches ``run mimikatz now``; a
    string pattern becomes unanchored, other values are unchanged.
    """
    if not isinstance(spec, StrSpec) or spec.kind in ("contains", "any"):
        return spec
    if spec.kind == "glob":
        return StrSpec("glob", f".*{spec.text}.*", spec.cased)
    return StrSpec("contains", spec.text, spec.cased)


def _timestamp_part_name(part: TimestampPart) -> str:
    return part.name.lower()


def _string_spec(value: SigmaString) -> StrSpec:
    cased = isinstance(value, SigmaCasedString)
    parts = list(value.s)
    for part in parts:
        if isinstance(part, Placeholder):
            raise UnsupportedValue(
                f"placeholder %{part.name}% is not resolved; define it with --placeholder "
                f"{part.name}=VALUE[,VALUE...] or in a processing pipeline"
            )
    literal_parts = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if isinstance(p, SpecialChars)]

    def norm(text: str) -> str:
        return text if cased else text.lower()

    if not specials:
        return StrSpec("eq", norm("".join(literal_parts)), cased)
    multi = SpecialChars.WILDCARD_MULTI
    if all(p is multi for p in specials):
        if len(parts) == 1:
            return StrSpec("any", "", cased)
        if len(parts) == 2 and parts[1] is multi:
            return StrSpec("prefix", norm(parts[0]), cased)  # type: ignore[arg-type]
        if len(parts) == 2 and parts[0] is multi:
            return StrSpec("suffix", norm(parts[1]), cased)  # type: ignore[arg-type]
        if len(parts) == 3 and parts[0] is multi and parts[2] is multi:
            return StrSpec("contains", norm(parts[1]), cased)  # type: ignore[arg-type]
    pieces = []
    for part in parts:
        if part is multi:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(re.escape(norm(str(part))))
    return StrSpec("glob", "".join(pieces), cased)


# --- tests: a group of OR-ed specs becomes one function -------------------------------------


def coerce_text(value: Any) -> str | None:
    """The text form of a scalar event value, for string patterns (``None`` for others)."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if cls is bool:
        return "true" if value else "false"
    if cls is int or cls is float:
        return str(value)
    return None


def _coerce_number(value: Any) -> float | None:
    cls = value.__class__
    if cls is int or cls is float:
        return float(value)
    if cls is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


@lru_cache(maxsize=8192)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _time_part(value: Any, part: str) -> int | None:
    epoch = parse_time(value)
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if part == "week":
        return moment.isocalendar().week
    return int(getattr(moment, part))


_CMP: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "neq": lambda a, b: a != b,
}


# Distinct strings remembered per memoized test; the memo is cleared when full.
MEMO_SIZE = 4096


def build_test(specs: Sequence[Spec]) -> ValueTest:
    """One function answering "does this scalar event value match any of ``specs``?"."""
    strs = [s for s in specs if isinstance(s, StrSpec)]
    others = [s for s in specs if not isinstance(s, StrSpec)]
    if not strs and others and all(isinstance(s, NumSpec) for s in others):
        return _number_test(frozenset(s.number for s in others))  # type: ignore[union-attr]
    if not strs and len(others) == 1 and isinstance(others[0], CmpSpec):
        return _compare_test(others[0])
    if not others and strs and not any(s.cased for s in strs):
        test = _ci_string_test(strs)
    else:
        test = _general_test(strs, others)
    if all(isinstance(s, StrSpec) and s.kind in ("eq", "any") for s in specs):
        return test
    return _memoized(test)


def _memoized(test: ValueTest) -> ValueTest:
    """Remember the answer per string: user agents, user names and URIs repeat all day, and
    substring, wildcard and regular-expression tests cost far more than a dictionary lookup."""
    memo: dict[str, bool] = {}

    def remembered(v: Any) -> bool:
        if v.__class__ is not str:
            return test(v)
        found = memo.get(v)
        if found is None:
            found = test(v)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[v] = found
        return found

    return remembered


def _number_test(numbers: frozenset[float]) -> ValueTest:
    def number(v: Any) -> bool:
        cls = v.__class__
        if cls is int or cls is float:
            return v in numbers
        if cls is str:
            found = _coerce_number(v)
            return found is not None and found in numbers
        return False

    return number


def _compare_test(spec: CmpSpec) -> ValueTest:
    op, bound = _CMP[spec.op], spec.number

    def compare(v: Any) -> bool:
        cls = v.__class__
        if cls is int or cls is float:
            return op(v, bound)
        if cls is str:
            found = _coerce_number(v)
            return found is not None and op(found, bound)
        return False

    return compare


def _ci_string_test(specs: Sequence[StrSpec]) -> ValueTest:
    """Case-insensitive string patterns only: the common case, kept lean."""
    if any(s.kind == "any" for s in specs):
        return lambda v: coerce_text(v) is not None
    eq = frozenset(s.text for s in specs if s.kind == "eq")
    prefixes = tuple(s.text for s in specs if s.kind == "prefix")
    suffixes = tuple(s.text for s in specs if s.kind == "suffix")
    contains = tuple(s.text for s in specs if s.kind == "contains")
    globs = [re.compile(s.text, re.DOTALL) for s in specs if s.kind == "glob"]
    if eq and not (prefixes or suffixes or contains or globs):
        if len(eq) == 1:
            (only,) = eq

            def eq_one(v: Any) -> bool:
                if v.__class__ is str:
                    return bool(v.lower() == only)
                text = coerce_text(v)
                return text is not None and text.lower() == only

            return eq_one

        def eq_set(v: Any) -> bool:
            if v.__class__ is str:
                return v.lower() in eq
            text = coerce_text(v)
            return text is not None and text.lower() in eq

        return eq_set
    if contains and not (eq or prefixes or suffixes or globs):
        if len(contains) == 1:
            (needle,) = contains

            def contains_one(v: Any) -> bool:
                text = v if v.__class__ is str else coerce_text(v)
                return text is not None and needle in text.lower()

            return contains_one

        def contains_any(v: Any) -> bool:
            text = v if v.__class__ is str else coerce_text(v)
            if text is None:
                return False
            low = text.lower()
            return any(needle in low for needle in contains)

        return contains_any

    def mixed(v: Any) -> bool:
        text = v if v.__class__ is str else coerce_text(v)
        if text is None:
            return False
        low = text.lower()
        if low in eq:
            return True
        if prefixes and low.startswith(prefixes):
            return True
        if suffixes and low.endswith(suffixes):
            return True
        for needle in contains:
            if needle in low:
                return True
        return any(g.fullmatch(low) for g in globs)

    return mixed


def _general_test(strs: Sequence[StrSpec], others: Iterable[Spec]) -> ValueTest:
    ci = [s for s in strs if not s.cased]
    cs = [s for s in strs if s.cased]
    ci_test = _ci_string_test(ci) if ci else None
    cs_test = _cased_string_test(cs) if cs else None
    null = False
    numbers: set[float] = set()
    bools: set[bool] = set()
    cmps: list[tuple[Callable[[float, float], bool], float]] = []
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    regexes: list[re.Pattern[str]] = []
    parts: list[tuple[str, int]] = []
    for spec in others:
        if isinstance(spec, NullSpec):
            null = True
        elif isinstance(spec, NumSpec):
            numbers.add(spec.number)
        elif isinstance(spec, BoolSpec):
            bools.add(spec.value)
        elif isinstance(spec, CmpSpec):
            cmps.append((_CMP[spec.op], spec.number))
        elif isinstance(spec, CidrSpec):
            networks.append(spec.network)
        elif isinstance(spec, RegexSpec):
            regexes.append(re.compile(spec.pattern, spec.flags))
        elif isinstance(spec, TimePartSpec):
            parts.append((spec.part, spec.number))

    def test(v: Any) -> bool:
        if v is MISSING or v is None:
            return null
        if v.__class__ is bool:
            if v in bools:
                return True
        elif numbers or cmps:
            number = _coerce_number(v)
            if number is not None:
                if number in numbers:
                    return True
                for op, bound in cmps:
                    if op(number, bound):
                        return True
        if v.__class__ is str and bools and v.lower() in ("true", "false"):  # noqa: SIM102
            if (v.lower() == "true") in bools:
                return True
        if ci_test is not None and ci_test(v):
            return True
        if cs_test is not None and cs_test(v):
            return True
        if regexes or networks:
            text = coerce_text(v)
            if text is not None:
                for regex in regexes:
                    if regex.search(text):
                        return True
                if networks:
                    address = _parse_ip(text)
                    if address is not None:
                        for network in networks:
                            if address.version == network.version and address in network:
                                return True
        for part, number in parts:
            if _time_part(v, part) == number:
                return True
        return False

    return test


def _cased_string_test(specs: Sequence[StrSpec]) -> ValueTest:
    eq = frozenset(s.text for s in specs if s.kind == "eq")
    prefixes = tuple(s.text for s in specs if s.kind == "prefix")
    suffixes = tuple(s.text for s in specs if s.kind == "suffix")
    contains = tuple(s.text for s in specs if s.kind == "contains")
    globs = [re.compile(s.text, re.DOTALL) for s in specs if s.kind == "glob"]
    any_value = any(s.kind == "any" for s in specs)

    def test(v: Any) -> bool:
        text = coerce_text(v)
        if text is None:
            return False
        if any_value or text in eq:
            return True
        if prefixes and text.startswith(prefixes):
            return True
        if suffixes and text.endswith(suffixes):
            return True
        return any(n in text for n in contains) or any(g.fullmatch(text) for g in globs)

    return test


def spec_cost(spec: Spec) -> int:
    """Rough relative cost, to evaluate cheap tests first."""
    if isinstance(spec, StrSpec):
        return {"eq": 1, "prefix": 2, "suffix": 2, "any": 1, "contains": 3}.get(spec.kind, 8)
    if isinstance(spec, RegexSpec | TimePartSpec):
        return 10
    if isinstance(spec, CidrSpec):
        return 6
    return 1
