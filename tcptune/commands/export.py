"""`tcptune export PROFILE --format sysctl|k8s|docker|ansible`: a profile for another tool."""

from __future__ import annotations

from typing import IO

from tcptune import formats
from tcptune.errors import EXIT_OK
from tcptune.profiles import load
from tcptune.system import System


def run(system: System, profile_name: str, *, fmt: str, stream: IO[str]) -> int:
    profile = load(profile_name, system.root)
    stream.write(formats.export(profile.name, profile.sysctl, fmt))
    return EXIT_OK
