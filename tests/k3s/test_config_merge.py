"""Configuration files merge as in K3s: file order, `key+` appends, a plain key replaces."""

from __future__ import annotations

from tests.k3s.helpers import CONFIG, DROPINS, Node

from k3watch.policy.k3s.config import config_files, read_config
from k3watch.policy.k3s.layout import Layout


def values(node: Node, key: str = "kube-apiserver-arg") -> list[str]:
    return [i.value for i in read_config(Layout(node.root)).items(key)]


def test_no_configuration_at_all_reads_nothing(node: Node) -> None:
    config = read_config(Layout(node.root))
    assert config.files == []
    assert config.settings == {}
    assert config.errors == []


def test_config_yaml_comes_first_then_dropins_by_name_yaml_and_yml_of_any_case(
    node: Node,
) -> None:
    node.write(CONFIG, "a: 1\n")
    node.write(f"{DROPINS}/20-b.yml", "a: 3\n")
    node.write(f"{DROPINS}/10-a.yaml", "a: 2\n")
    node.write(f"{DROPINS}/30-c.YAML", "a: 4\n")
    node.write(f"{DROPINS}/40-skip.txt", "a: no\n")
    node.write(f"{DROPINS}/50-old.yaml.bak.20260101T000000Z", "a: no\n")
    node.mkdir(f"{DROPINS}/60-dir.yaml")
    names = [p.name for p in config_files(Layout(node.root))]
    assert names == ["config.yaml", "10-a.yaml", "20-b.yml", "30-c.YAML"]
    assert values(node, "a") == ["4"]


def test_dropins_alone_are_read_when_config_yaml_is_missing(node: Node) -> None:
    node.write(f"{DROPINS}/10-a.yaml", "kube-apiserver-arg:\n  - audit-log-maxage=30\n")
    assert values(node) == ["audit-log-maxage=30"]


def test_plain_key_in_a_later_file_replaces_earlier_values(node: Node) -> None:
    node.write(CONFIG, "kube-apiserver-arg:\n  - a=1\n  - b=2\n")
    node.write(f"{DROPINS}/10-x.yaml", "kube-apiserver-arg:\n  - c=3\n")
    config = read_config(Layout(node.root))
    assert [i.value for i in config.items("kube-apiserver-arg")] == ["c=3"]
    steps = config.steps("kube-apiserver-arg")
    assert [(s.op, str(s.location)) for s in steps] == [
        ("set", f"{CONFIG}:1"),
        ("set", f"{DROPINS}/10-x.yaml:1"),
    ]


def test_plus_key_appends_and_keeps_each_items_file_and_line(node: Node) -> None:
    node.write(CONFIG, "node-name: s1\nkube-apiserver-arg:\n  - a=1\n")
    node.write(f"{DROPINS}/10-x.yaml", "# comment\nkube-apiserver-arg+:\n  - b=2\n  - c=3\n")
    items = read_config(Layout(node.root)).items("kube-apiserver-arg")
    assert [(i.value, str(i.location)) for i in items] == [
        ("a=1", f"{CONFIG}:3"),
        ("b=2", f"{DROPINS}/10-x.yaml:3"),
        ("c=3", f"{DROPINS}/10-x.yaml:4"),
    ]


def test_plus_with_nothing_before_sets_and_a_scalar_counts_as_one_item(node: Node) -> None:
    node.write(f"{DROPINS}/10-x.yaml", "kube-apiserver-arg+: a=1\n")
    node.write(f"{DROPINS}/20-y.yaml", "kube-apiserver-arg+: b=2\n")
    assert values(node) == ["a=1", "b=2"]


def test_non_string_values_become_flag_text_as_k3s_writes_them(node: Node) -> None:
    node.write(CONFIG, "secrets-encryption: true\nkube-apiserver-arg:\n  - 30\n")
    config = read_config(Layout(node.root))
    assert config.settings["secrets-encryption"].value == "true"
    assert values(node) == ["30"]


def test_an_empty_file_sets_nothing(node: Node) -> None:
    node.write(CONFIG, "kube-apiserver-arg: [a=1]\n")
    node.write(f"{DROPINS}/10-empty.yaml", "# nothing here\n")
    assert values(node) == ["a=1"]


def test_invalid_yaml_and_non_mappings_are_errors_with_file_and_line(node: Node) -> None:
    node.write(CONFIG, "kube-apiserver-arg: [a=1\n")
    node.write(f"{DROPINS}/10-list.yaml", "- a\n- b\n")
    node.write(f"{DROPINS}/20-ok.yaml", "x: 1\n")
    config = read_config(Layout(node.root))
    messages = [str(e) for e in config.errors]
    assert len(messages) == 2
    assert messages[0].startswith(f"{CONFIG}:2: invalid YAML")
    assert messages[1].startswith(f"{DROPINS}/10-list.yaml:1: a K3s configuration file must be")
    assert all("K3s will refuse to start" in m for m in messages)
    assert config.settings["x"].value == "1"


def test_a_key_twice_in_one_file_is_a_warning(node: Node) -> None:
    node.write(CONFIG, "a: 1\na: 2\n")
    config = read_config(Layout(node.root))
    assert config.settings["a"].value == "2"
    assert "appears twice" in str(config.warnings[0])


def test_overrides_show_the_merge_with_a_file_added_changed_or_removed(node: Node) -> None:
    node.write(CONFIG, "kube-apiserver-arg: [a=1]\n")
    node.write(f"{DROPINS}/50-x.yaml", "kube-apiserver-arg+: [b=2]\n")
    layout = Layout(node.root)
    added = read_config(layout, {f"{DROPINS}/10-new.yaml": "kube-apiserver-arg+: [n=0]\n"})
    assert [i.value for i in added.items("kube-apiserver-arg")] == ["a=1", "n=0", "b=2"]
    removed = read_config(layout, {f"{DROPINS}/50-x.yaml": None})
    assert [i.value for i in removed.items("kube-apiserver-arg")] == ["a=1"]
    assert node.path(f"{DROPINS}/50-x.yaml").exists()
