# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a playbook run spends its time, task by task: for `make bench --profile` (benchmarks/run_bench.py).

Not part of the collection. Enabled by the bench with ANSIBLE_CALLBACK_PLUGINS=benchmarks/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=bench_profile; writes JSON to $CODEXOPS_BENCH_PROFILE at the end of the run.

With the linear strategy every host finishes a task before the next one starts, so the time and CPU between two
task starts belong to the first. CPU is the controller process's own (templating, queueing, results) plus every
reaped child's (the forked workers, and the modules they ran: with a local connection, or a wrapper, they are
descendants); finished workers are reaped at each boundary so their CPU lands on their own task. Per host: how many
hosts the task ran for (ok, changed, failed or skipped: a skipped task still costs each host a worker).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import multiprocessing
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: bench_profile
    type: aggregate
    short_description: per-task wall, controller CPU and host counts for the benchmark
    description: Writes one JSON document to $CODEXOPS_BENCH_PROFILE at the end of the run.
'''


def _cpu():
    # At a task start every result of the task before is in, but its workers may still be exiting: wait for them
    # (briefly) and reap them, so their CPU, and their modules', lands on their own task.
    for worker in multiprocessing.active_children():
        worker.join(2)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_profile'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._rows = []
        self._open = None
        self._play = ''
        self._start = (time.monotonic(), _cpu())

    def _close(self):
        if self._open is not None:
            wall, cpu = time.monotonic(), _cpu()
            self._open['wall'] = wall - self._open.pop('_wall')
            self._open['cpu'] = cpu - self._open.pop('_cpu')
            self._rows.append(self._open)
            self._open = None

    def _begin(self, name, kind):
        self._close()
        self._open = {'play': self._play, 'task': name, 'kind': kind, 'hosts': 0,
                      '_wall': time.monotonic(), '_cpu': _cpu()}

    def v2_playbook_on_play_start(self, play):
        self._close()
        self._play = play.get_name().strip()
        self._begin('(play start)', 'play')

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._begin(task.get_name().strip(), 'task')

    def v2_playbook_on_handler_task_start(self, task):
        self._begin(task.get_name().strip(), 'handler')

    def v2_playbook_on_include(self, included_file):
        if self._open is not None:
            self._open['includes'] = self._open.get('includes', 0) + 1

    def _count(self, result):
        if self._open is not None:
            self._open['hosts'] += 1

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _count

    def v2_playbook_on_stats(self, stats):
        self._close()
        total_wall, total_cpu = time.monotonic() - self._start[0], _cpu() - self._start[1]
        path = os.environ.get('CODEXOPS_BENCH_PROFILE')
        if path:
            with open(path, 'w') as handle:
                json.dump({'tasks': self._rows, 'wall': total_wall, 'cpu': total_cpu}, handle)
