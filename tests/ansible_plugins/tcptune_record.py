"""An Ansible callback for tests/test_ansible.py: every task result and the recap, as JSON.

ansible-core ships no JSON callback (it moved to the ansible.posix collection), so the tests read
this file instead of parsing the human output. Enabled with ANSIBLE_CALLBACKS_ENABLED and written
to the path in TCPTUNE_ANSIBLE_RECORD.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: tcptune_record
    type: aggregate
    short_description: write task results and the recap as JSON (tcptune's tests)
    description: Writes to the file named by the TCPTUNE_ANSIBLE_RECORD environment variable.
"""

KEPT = ("rc", "stdout", "stderr", "msg", "cmd", "ansible_facts", "changed", "skip_reason")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tcptune_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results: list[dict] = []

    def _add(self, result, status: str) -> None:
        data = getattr(result, "result", None)
        if data is None:  # ansible-core before 2.19
            data = result._result
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        self.results.append(
            {
                "task": task.get_name(),
                "host": host.get_name(),
                "status": status,
                **{key: data[key] for key in KEPT if key in data},
            }
        )

    def v2_runner_on_ok(self, result, **kwargs) -> None:
        self._add(result, "changed" if result_changed(result) else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs) -> None:
        self._add(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result, **kwargs) -> None:
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs) -> None:
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(os.environ["TCPTUNE_ANSIBLE_RECORD"], "w", encoding="utf-8") as out:
            json.dump({"results": self.results, "recap": recap}, out, indent=1, default=str)


def result_changed(result) -> bool:
    data = getattr(result, "result", None)
    if data is None:
        data = result._result
    return bool(data.get("changed"))
