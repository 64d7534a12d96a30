# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import io
import os

import pytest
import yaml

from ansible_collections.hypermotion.linux_agent.tests.tools import role_docs


def spec(options, **entry_points):
    """argument_specs.yml content: `main` with these options, plus other entry points."""
    specs = {"main": {"short_description": "Do the thing", "options": options}}
    specs.update(entry_points)
    return {"argument_specs": specs}


# One small spec -> lines the README must contain.
RENDER_CASES = [
    pytest.param(
        {"x_version": {"type": "str", "default": "1.0", "description": "Release."}},
        ['| `x_version` | str | no | `"1.0"` | Release. |'],
        id="str-default-quoted",
    ),
    pytest.param(
        {"x_on": {"type": "bool", "default": False, "description": "Switch."}},
        ["| `x_on` | bool | no | `false` | Switch. |"],
        id="bool",
    ),
    pytest.param(
        {"x_url": {"type": "str", "required": True, "description": "URL, e.g. C(https://h:1)."}},
        ["| `x_url` | str | yes |  | URL, e.g. `https://h:1`. |"],
        id="required-no-default-markup",
    ),
    pytest.param(
        {"x_paths": {"type": "list", "elements": "path", "default": ["/a", "/b"], "description": ["One.", "Two."]}},
        ['| `x_paths` | list of path | no | `["/a", "/b"]` | One. Two. |'],
        id="list-elements-paragraphs",
    ),
    pytest.param(
        {"x_src": {"type": "str", "choices": ["a", "b"], "default": "a", "description": "Where O(x_src=a) is."}},
        ['| `x_src` | str | no | `"a"` | Where `x_src=a` is. Choices: `"a"`, `"b"`. |'],
        id="choices",
    ),
    pytest.param(
        {"x_token": {"type": "str", "no_log": True, "default": "", "description": "Secret | token."}},
        ['| `x_token` | str (no_log) | no | `""` | Secret \\| token. |'],
        id="no-log-pipe-escaped",
    ),
    pytest.param(
        {"x_map": {"type": "dict", "description": "Map.", "options": {"key": {"type": "int", "default": 3}}}},
        ["| `x_map` | dict | no |  | Map. |", "| `x_map.key` | int | no | `3` |  |"],
        id="suboptions",
    ),
]


@pytest.mark.parametrize(("options", "expected"), RENDER_CASES)
def test_render_option_rows(options, expected):
    lines = role_docs.render("r", spec(options), None).splitlines()
    for line in expected:
        assert line in lines


def test_render_page():
    platforms = [{"name": "Debian", "versions": ["bookworm"]}, {"name": "EL", "versions": [9]}]
    meta = {"galaxy_info": {"description": "The role", "min_ansible_version": "2.17", "platforms": platforms}}
    options = {"r_a": {"type": "int", "default": 1, "description": "A."}}
    argument_specs = spec(
        options,
        remove={"short_description": "Undo it.", "options": dict(options)},
        empty={"short_description": "Nothing", "options": {}},
    )
    lines = role_docs.render("r", argument_specs, meta).splitlines()
    assert lines[0] == role_docs.GENERATED_MARK
    assert "# hypermotion.linux_agent.r" in lines
    assert "The role." in lines
    assert "Platforms: Debian (bookworm); EL (9). Minimum Ansible version: 2.17." in lines
    assert lines.index("### `main`") < lines.index("### `remove`") < lines.index("### `empty`")
    assert "Do the thing." in lines
    assert "    tasks_from: remove" in lines
    assert "Options: the same as `main`." in lines
    assert "No options." in lines


@pytest.mark.parametrize(
    ("options", "defaults", "problems"),
    [
        pytest.param({"a": {"default": 1}}, {"a": 1}, [], id="in-sync"),
        pytest.param({"a": {"required": True}}, {}, [], id="required-needs-no-default"),
        pytest.param({"a": {"default": 1}}, {"a": 1, "b": 2}, ["defaults/main.yml sets b"], id="undocumented-default"),
        pytest.param({"a": {"default": 1}, "b": {"type": "str"}}, {"a": 1}, ["option b of the main"], id="no-default"),
    ],
)
def test_defaults_drift(options, defaults, problems):
    found = role_docs.defaults_drift(spec(options), defaults)
    assert len(found) == len(problems)
    for message, start in zip(found, problems):
        assert message.startswith(start)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(data if isinstance(data, str) else yaml.safe_dump(data))


@pytest.fixture
def collection(tmp_path):
    write(str(tmp_path / "galaxy.yml"), {"namespace": "ns", "name": "coll"})
    for role in ("one", "two"):
        write(str(tmp_path / "roles" / role / "meta" / "argument_specs.yml"),
              spec({"%s_a" % role: {"type": "str", "default": "x", "description": "A."}}))
        write(str(tmp_path / "roles" / role / "meta" / "main.yml"), {"galaxy_info": {"description": role}})
        write(str(tmp_path / "roles" / role / "defaults" / "main.yml"), {"%s_a" % role: "x"})
        write(str(tmp_path / "roles" / role / "tasks" / "main.yml"), "---\n")
    return tmp_path


def test_write_then_check_passes(collection):
    assert role_docs.run(str(collection), out=io.StringIO()) == 0
    assert "# ns.coll.one" in (collection / "roles" / "one" / "README.md").read_text()
    out = io.StringIO()
    assert role_docs.run(str(collection), check=True, out=out) == 0
    assert "2 role READMEs up to date" in out.getvalue()


def test_check_names_the_stale_role(collection):
    role_docs.run(str(collection), out=io.StringIO())
    specs = collection / "roles" / "two" / "meta" / "argument_specs.yml"
    specs.write_text(specs.read_text().replace("description: A.", "description: B."))
    before = (collection / "roles" / "two" / "README.md").read_text()
    out = io.StringIO()
    assert role_docs.run(str(collection), check=True, out=out) == 1
    assert "out of date for: two (run" in out.getvalue()
    assert "one" not in out.getvalue()
    assert (collection / "roles" / "two" / "README.md").read_text() == before  # --check writes nothing


def test_check_fails_on_missing_readme_and_defaults_drift(collection, capsys):
    role_docs.run(str(collection), out=io.StringIO())
    (collection / "roles" / "one" / "README.md").unlink()
    write(str(collection / "roles" / "two" / "defaults" / "main.yml"), {"two_a": "x", "two_extra": 1})
    write(str(collection / "roles" / "three" / "tasks" / "main.yml"), "---\n")
    assert role_docs.main(["--check", "--root", str(collection)]) == 1
    out = capsys.readouterr().out
    assert "out of date for: one (run" in out
    assert "two: defaults/main.yml sets two_extra" in out
    assert "three: no meta/argument_specs.yml" in out
    assert not (collection / "roles" / "one" / "README.md").exists()
