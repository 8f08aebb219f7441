"""Property tests: any input either parses or yields a clean error, and normalising is idempotent."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcptune import keys, model, profiles, sysctld
from tcptune.model import normalise

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_NAMES = st.sampled_from(
    [*keys.KEYS, "net.core.netdev_max_backlog", "kernel.core_pattern", "net..x"]
)
TOML_VALUES = st.recursive(
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.text(max_size=30),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    lambda children: st.lists(children, max_size=4),
    max_leaves=8,
)


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string("".join(c for c in value if c.isprintable()))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_give_problems(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "p.toml"
        path.write_bytes(data)
        result = profiles.read_file(path)
    for problem in result.problems:
        assert str(problem).startswith(str(path))
    if not result.problems:
        assert result.description


@SETTINGS
@given(st.dictionaries(KEY_NAMES, TOML_VALUES, max_size=6), st.text(max_size=20))
def test_any_sysctl_table_parses_or_names_the_key(table: dict, description: str) -> None:
    body = "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in table.items())
    text = f"description = {toml_value(description)}\n[sysctl]\n{body}"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "p.toml"
        path.write_text(text)
        result = profiles.read_file(path)
    keys_with_problems = {p.key for p in result.problems}
    if not any(not p.key for p in result.problems):  # the TOML itself was valid
        for key in table:
            assert key in result.sysctl or key in keys_with_problems, key
    for key, value in result.sysctl.items():
        assert key.startswith(profiles.NETWORK_PREFIXES)
        assert value == model.canonical(value) or "," in value


@SETTINGS
@given(st.sampled_from(list(keys.KEYS.values())), TOML_VALUES)
def test_normalised_profile_values_are_fixed_points(spec: keys.KeySpec, value: object) -> None:
    error, normalised = profiles.normalise_for(spec, value)
    if error:
        assert normalised == ""
        return
    again_error, again = profiles.normalise_for(spec, normalised)
    assert again_error is None
    assert again == normalised


@SETTINGS
@given(st.text(max_size=80))
def test_value_normalisers_are_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)
    assert model.canonical(model.canonical(text)) == model.canonical(text)
    assert model.same_value(text, normalise(text))


@SETTINGS
@given(st.text(max_size=600))
def test_the_loader_model_reads_anything(text: str) -> None:
    files = [
        model.ConfFile(
            directory="etc/sysctl.d", name="x.conf", path="/etc/sysctl.d/x.conf", text=text
        )
    ]
    boot = sysctld.BootModel(files)
    for key in ("net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_rmem", "net.ipv4.tcp_congestion_control"):
        for answer in boot.answers(key):
            if answer.source is not None:
                line = int(answer.source.rsplit(":", 1)[1])
                assert 1 <= line <= text.count("\n") + 1
            assert answer.value is None or answer.value == normalise(answer.value)


# The loaders' rules written out from sysctl.d(5) and procps' sysctl(8) --system, not from
# tcptune: directories by precedence (a name in an earlier one hides the same name in a later
# one), only *.conf, files applied in the byte order of their names, the last assignment wins;
# procps then reads /etc/sysctl.conf, systemd-sysctl never does.
PRECEDENCE = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
]
# the names the layouts use, in the order the loaders apply them ("9" < "s" in ASCII)
APPLIED_ORDER = ["10-a.conf", "50-b.conf", "99-z.conf", "sysctl.conf"]


def expected_boot_value(layout: dict[tuple[str, str], int], loader: str) -> int | None:
    value = None
    for name in APPLIED_ORDER:
        holders = [d for d in PRECEDENCE if (d, name) in layout]
        if holders:
            value = layout[holders[0], name]
    if loader == model.PROCPS and ("", "sysctl.conf") in layout:
        value = layout["", "sysctl.conf"]
    return value


@SETTINGS
@given(
    st.dictionaries(
        st.tuples(
            st.sampled_from([*PRECEDENCE, ""]),
            st.sampled_from(["10-a.conf", "50-b.conf", "99-z.conf", "x.conf.bak", "sysctl.conf"]),
        ),
        st.integers(min_value=0, max_value=99),
        max_size=8,
    )
)
def test_boot_value_is_the_last_assignment_of_the_loader_order(layout: dict) -> None:
    layout = {(d, n): v for (d, n), v in layout.items() if d or n == "sysctl.conf"}
    files = [
        model.ConfFile(
            directory=d,
            name=n,
            path=f"/{d}/{n}" if d else "/etc/sysctl.conf",
            text=f"net.ipv4.tcp_fin_timeout = {v}\n",
        )
        for (d, n), v in layout.items()
    ]
    boot = sysctld.BootModel(files)
    for loader in model.LOADERS:
        answer = boot.answer("net.ipv4.tcp_fin_timeout", loader)
        expected = expected_boot_value(layout, loader)
        assert answer.value == (None if expected is None else str(expected)), (loader, layout)
        if expected is not None:
            assert answer.source.endswith(":1")
            source = answer.source.removesuffix(":1")
            assert any(f.path == source and int(f.text.split("=")[1]) == expected for f in files), (
                answer
            )


ASKED = ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_rmem"]
PIECES = st.sampled_from(
    [
        "net.ipv4.tcp_fin_timeout",
        "net/ipv4/tcp_keepalive_time",
        "net.ipv4.tcp_keepalive_*",
        "net.ipv4.tcp_rmem",
        "-",
        "=",
        " = ",
        "30",
        "0x1f",
        " # c",
        "\n",
        "\r",
        "\0",
        "\f",
        "\t",
        " ",
        "#",
        "x" * 5,
    ]
)


@SETTINGS
@given(st.lists(st.lists(PIECES, max_size=40).map("".join), min_size=1, max_size=4))
def test_parsing_only_the_lines_of_the_asked_keys_changes_no_answer(texts: list[str]) -> None:
    """check and apply parse only the lines that can name the keys they ask about."""
    files = [
        model.ConfFile(
            directory="etc/sysctl.d", name=f"{i}.conf", path=f"/etc/sysctl.d/{i}.conf", text=t
        )
        for i, t in enumerate(texts)
    ]
    everything, asked = sysctld.BootModel(files), sysctld.BootModel(files, keys=ASKED)
    for key in ASKED:
        for full, some in zip(everything.answers(key), asked.answers(key), strict=True):
            assert (full.value, full.source, full.unknown) == (
                some.value,
                some.source,
                some.unknown,
            )
