"""tcptune.rates: the CLOSE_WAIT state file as written and as read back, exactly, and the
refusals a hostile file meets (each reason is what `sockets --output` prints in its warning line:
"warning: ignored /var/lib/tcptune/close-wait.json: REASON; CLOSE_WAIT growth starts again")."""

from __future__ import annotations

import json

import pytest

from tcptune import rates
from tcptune.census import Owner


def owner(pid: int | None, count: int, command: str | None = "nginx", uid: int = 33) -> Owner:
    return Owner(pid=pid, command=command, cmdline=None, uid=uid, count=count, local=[], remote=[])


def snap(owners: dict, close_wait: int = 5, complete: bool = True) -> rates.Snapshot:
    return rates.Snapshot(
        time=1700000000.5, boot_id="b-1", netns="4026531840", close_wait=close_wait,
        owners=owners, complete=complete,
    )  # fmt: skip


def test_the_state_file_byte_for_byte() -> None:
    """One line of compact ASCII JSON, largest owner first, ties in the order of the key."""
    written = rates.to_json(
        snap({("42", "b", "0"): 3, ("7", "a", "0"): 3, ("9", "z", "1"): 9}, close_wait=15)
    )
    assert written == (
        b'{"format":1,"time":1700000000.5,"boot_id":"b-1","netns":"4026531840",'
        b'"close_wait":15,"complete":true,"owners":[["9","z","1",9],["42","b","0",3],'
        b'["7","a","0",3]]}\n'
    )


def test_a_command_name_in_any_script_survives_the_round_trip() -> None:
    """The file is ASCII (from_json refuses anything else): other scripts travel as \\u escapes."""
    before = snap({("42", "сервер-é", "0"): 2})
    written = rates.to_json(before)
    assert written.isascii() and "\\u0441" in written.decode()
    assert rates.from_json(written) == before


def test_the_largest_owners_are_kept_and_the_rest_is_said_to_be_missing() -> None:
    owners = {(str(pid), "w", "0"): 1 for pid in range(rates.MAX_STATE_OWNERS + 1)}
    owners[("x", "big", "0")] = 5
    read = rates.from_json(rates.to_json(snap(owners)))
    assert len(read.owners) == rates.MAX_STATE_OWNERS and read.complete is False
    assert read.owners[("x", "big", "0")] == 5
    # among equal counts the smallest keys stay: "1000" sorts before "999", so "999" is cut
    assert ("999", "w", "0") not in read.owners and ("1000", "w", "0") in read.owners
    exact = {(str(pid), "w", "0"): 1 for pid in range(rates.MAX_STATE_OWNERS)}
    assert rates.from_json(rates.to_json(snap(exact))).complete is True


def test_a_snapshot_counts_per_owner_and_keeps_what_it_was_given() -> None:
    taken = rates.snapshot(
        [owner(None, 2, uid=0), owner(None, 3, uid=0), owner(10, 1, command=None), owner(11, 4)],
        10,
        time=5.0,
        boot_id="boot",
        netns="ns",
    )
    assert taken == rates.Snapshot(
        time=5.0, boot_id="boot", netns="ns", close_wait=10, complete=True,
        owners={("unknown", "unknown", "0"): 5, ("10", "?", "33"): 1, ("11", "nginx", "33"): 4},
    )  # fmt: skip


def test_growth_ranks_fastest_first_and_ties_by_owner() -> None:
    before = snap({("1", "a", "0"): 0, ("2", "b", "0"): 0, ("3", "c", "0"): 0})
    after = rates.Snapshot(
        time=before.time + 120, boot_id="b-1", netns="4026531840", close_wait=11,
        owners={("3", "c", "0"): 10, ("2", "b", "0"): 4, ("1", "a", "0"): 4},  # ties: not in order
        complete=True,
    )  # fmt: skip
    grown = rates.growth(before, after)
    assert grown is not None and grown.window == 120 and grown.total == 3.0
    assert grown.ranked() == [
        (("3", "c", "0"), 5.0),
        (("1", "a", "0"), 2.0),
        (("2", "b", "0"), 2.0),
    ]


GOOD = json.loads(rates.to_json(snap({("42", "nginx", "33"): 2})))


def variant(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff", "not JSON ('ascii' codec can't decode byte 0xff in position 0"),
        (b"[1]", "not a format 1 state file"),
        (variant(format=2), "not a format 1 state file"),
        (json.dumps({**GOOD, "extra": 1}).encode(), "unexpected fields"),
        (variant(time="now"), "a time that is not a number"),
        (variant(time=True), "a time that is not a number"),
        (b'{"format":1,"time":Infinity}', "unexpected fields"),
        (variant(boot_id=7), "a label that is not a short string"),
        (variant(boot_id="b" * 257), "a label that is not a short string"),
        (variant(complete=1), "complete is not true or false"),
        (variant(owners={}), "owners is not a list of at most 1000"),
        (variant(owners=[["1", "a", "0", 1]] * 1001), "owners is not a list of at most 1000"),
        (variant(owners=[["1", "a", "0"]]), "an owner that is not [pid, command, uid, count]"),
        (
            variant(owners=[("1", "a", "0", 1, 2)]),
            "an owner that is not [pid, command, uid, count]",
        ),
        (variant(owners=[["1", "a", "0", 1], ["1", "a", "0", 2]]), "an owner listed twice"),
        (variant(owners=[["1", "a", "0", -1]]), "a count that is not a whole number of sockets"),
        (variant(owners=[["1", "a", "0", 2**32]]), "a count that is not a whole number of sockets"),
        (variant(owners=[["1", "a", "0", 1.0]]), "a count that is not a whole number of sockets"),
        (variant(owners=[["1", "a", "0", True]]), "a count that is not a whole number of sockets"),
        (variant(close_wait=-1), "a count that is not a whole number of sockets"),
        (variant(netns=None), "a label that is not a short string"),
    ],
)
def test_what_to_json_never_writes_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        rates.from_json(data)
    assert str(refused.value).startswith(reason)


def test_a_time_that_is_infinite_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^a time that is not a number$"):
        rates.from_json(b'{"format":1,"time":Infinity,"boot_id":null,"netns":"n",'
                        b'"close_wait":0,"complete":true,"owners":[]}')  # fmt: skip


def test_the_limits_themselves_are_accepted() -> None:
    edge = variant(
        boot_id="b" * 256,
        close_wait=0,
        owners=[["1", "a" * 256, "0", 2**32 - 1], ["2", "", "0", 0]],
    )
    read = rates.from_json(edge)
    assert read.owners == {("1", "a" * 256, "0"): 2**32 - 1, ("2", "", "0"): 0}
    assert read.boot_id == "b" * 256 and read.close_wait == 0


def test_the_size_limit_is_one_mebibyte_exactly() -> None:
    body = variant()
    padded = body + b" " * (rates.MAX_STATE_BYTES - len(body))  # JSON allows trailing blanks
    assert len(padded) == rates.MAX_STATE_BYTES
    assert rates.from_json(padded).owners == {("42", "nginx", "33"): 2}
    with pytest.raises(ValueError, match=r"^larger than 1024 KiB$"):
        rates.from_json(padded + b" ")
