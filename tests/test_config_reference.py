"""The key reference of docs/config.md is generated from the configuration models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from k3watch.config import Config
from k3watch.config_reference import (
    BEGIN,
    END,
    main,
    render_reference,
    replace_generated,
    undocumented_fields,
)

DOC = Path(__file__).parents[1] / "docs" / "config.md"


def test_docs_config_md_has_the_current_reference() -> None:
    """docs/config.md ends with the generated reference; regenerate it when a model changes."""
    doc = DOC.read_text(encoding="utf-8")
    assert BEGIN in doc
    assert END in doc
    assert replace_generated(doc, render_reference(Config)) == doc, (
        "the configuration reference is out of date; run: "
        ".venv/bin/python -m k3watch.config_reference --write docs/config.md"
    )


def test_every_section_of_the_configuration_has_a_heading() -> None:
    reference = render_reference(Config)
    for f in msgspec.structs.fields(Config):
        if f.name != "source":
            assert f"### `{f.encode_name}`\n" in reference
    assert "`source`" not in reference.split("### `", 1)[0]  # set by the loader, not a key


# --- small models that exercise each kind of field ---


class Limits(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Limits of one thing.

    A second paragraph.
    """

    size: int = 10
    """Largest size, in ``bytes``."""
    ratio: float = 0.5


class Base(msgspec.Struct, tag_field="kind", kw_only=True):
    """What every target has."""

    name: str
    """Unique name."""
    limits: Limits = Limits()
    """Its limits."""


class Http(Base, tag="http", kw_only=True):
    """An HTTP target."""

    url: str
    """Where to send | what to send."""
    method: Literal["POST", "PUT"] = "POST"
    """HTTP method."""


class Disk(Base, tag="disk", kw_only=True):
    """A file target."""

    path: str
    """The file."""


class Entry(msgspec.Struct):
    """One entry of a list."""

    match: dict[str, Any]
    """Fields that must match."""
    labels: dict[str, list[str]] = msgspec.field(default_factory=lambda: {"team": ["a"]})
    """Labels of the entry."""


class Sample(msgspec.Struct, forbid_unknown_fields=True):
    """A sample configuration."""

    enabled: bool = True
    """Turn it off."""
    names: tuple[str, ...] = ("a", "b")
    """Some names."""
    mode: Literal["fast", "slow"] | None = None
    """How fast."""
    entries: list[Entry] = msgspec.field(default_factory=list)
    """Entries."""
    targets: tuple[Http | Disk, ...] = ()
    """Where things go."""
    limits: Limits = Limits(size=3)
    extra: Annotated[str, msgspec.Meta(description="From the type's metadata.")] = ""
    hidden: str = ""
    """Set by the program."""
    count: int = 1
    note: str = "a: b"


HIDDEN = {f"{Sample.__module__}.Sample.hidden"}


def rows(reference: str, heading: str) -> dict[str, list[str]]:
    """The table under ``### heading`` as key → [type, default, description]."""
    section = reference.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    table = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").replace("\\|", "\N{DIVIDES}").split("|")]
            key, *rest = (c.replace("\N{DIVIDES}", "|") for c in cells)
            table[key.strip("`")] = rest
    return table


@pytest.fixture(scope="module")
def reference() -> str:
    return render_reference(Sample, internal=HIDDEN)


def test_headings_are_dotted_paths_in_walk_order(reference: str) -> None:
    headings = [line for line in reference.splitlines() if line.startswith("#")]
    assert headings == [
        "### Top level",
        "### `entries[]`",
        "### `targets[]`",
        "### `targets[]` with `kind: http`",
        "### `targets[]` with `kind: disk`",
        "### `targets[].limits`",
        "### `limits`",
    ]


def test_the_root_table_renders_types_defaults_and_descriptions(reference: str) -> None:
    table = rows(reference, "Top level")
    assert table["enabled"] == ["boolean", "`true`", "Turn it off."]
    assert table["names"] == ["list of string", "`[a, b]`", "Some names."]
    assert table["mode"] == ['`"fast"` | `"slow"` | null', "`null`", "How fast."]
    assert table["entries"] == ["list of mapping", "`[]`", "Entries."]
    assert table["targets"] == ["list of mapping", "`[]`", "Where things go."]
    assert table["count"] == ["integer", "`1`", ""]
    assert table["note"] == ["string", '`"a: b"`', ""]


def test_a_model_default_shows_the_keys_it_changes(reference: str) -> None:
    # No attribute docstring: the description is the first paragraph of the model's docstring.
    assert rows(reference, "Top level")["limits"] == [
        "mapping",
        "`{size: 3}`",
        "Limits of one thing.",
    ]
    assert rows(reference, "`targets[]` with `kind: http`")["limits"][1] == "`{}`"


def test_type_metadata_describes_a_field_without_a_docstring(reference: str) -> None:
    assert rows(reference, "Top level")["extra"][2] == "From the type's metadata."


def test_internal_fields_are_left_out(reference: str) -> None:
    assert "hidden" not in rows(reference, "Top level")
    assert "| `hidden` |" in render_reference(Sample)


def test_class_docstrings_head_their_sections(reference: str) -> None:
    section = reference.split("### `targets[].limits`\n", 1)[1]
    assert section.startswith("\nLimits of one thing.\n\nA second paragraph.\n\n| Key |")


def test_default_factories_and_mappings(reference: str) -> None:
    table = rows(reference, "`entries[]`")
    assert table["match"] == ["mapping of string to any", "required", "Fields that must match."]
    assert table["labels"] == [
        "mapping of string to list of string",
        "`{team: [a]}`",
        "Labels of the entry.",
    ]


def test_a_tagged_union_lists_each_variant_with_its_tag(reference: str) -> None:
    intro = reference.split("### `targets[]`\n", 1)[1].split("\n### ", 1)[0]
    assert "What every target has." in intro
    assert "One of the following, chosen by `kind`: `http`, `disk`." in intro
    http = rows(reference, "`targets[]` with `kind: http`")
    assert list(http) == ["kind", "name", "limits", "url", "method"]
    assert http["kind"] == ['`"http"`', "required", "Selects these keys."]
    assert http["name"] == ["string", "required", "Unique name."]  # inherited, documented once
    assert http["url"][2] == "Where to send | what to send."
    assert http["method"] == ['`"POST"` | `"PUT"`', "`POST`", "HTTP method."]
    assert rows(reference, "`targets[]` with `kind: disk`")["path"] == [
        "string",
        "required",
        "The file.",
    ]


def test_a_model_used_in_several_places_is_described_once(reference: str) -> None:
    limits = rows(reference, "`targets[].limits`")
    assert limits["size"] == ["integer", "`10`", "Largest size, in `bytes`."]
    assert limits["ratio"] == ["number", "`0.5`", ""]
    assert "### `limits`\n\nSame keys as `targets[].limits`." in reference


def test_undocumented_fields_are_listed() -> None:
    assert undocumented_fields(Sample, internal=HIDDEN) == [
        "count",
        "note",
        "targets[].limits.ratio",
    ]


def test_replace_generated_keeps_the_prose_around_the_markers() -> None:
    text = f"# Title\n\nProse.\n\n{BEGIN}\n\nold\n{END}\n\nAfter.\n"
    assert (
        replace_generated(text, "new\n")
        == f"# Title\n\nProse.\n\n{BEGIN}\n\nnew\n\n{END}\n\nAfter.\n"
    )
    assert replace_generated("# Title\n", "new\n") == f"# Title\n\n{BEGIN}\n\nnew\n\n{END}\n"


def test_main_writes_the_section_and_lists_undocumented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.md"
    target.write_text("# Configuration\n", encoding="utf-8")
    assert main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == replace_generated(
        "# Configuration\n", render_reference(Config)
    )
    assert main(["--undocumented"]) == 0
    assert capsys.readouterr().out.splitlines() == undocumented_fields(Config)
    assert main([]) == 0
    assert capsys.readouterr().out == render_reference(Config)
