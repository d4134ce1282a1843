# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two jobs write back at once, one with an older refresh than the other: the newer copy ends up in
the store every time, against both real servers and the file store.

Each run seeds a fresh secret, then two threads (each with its own client, as two jobs would have)
pass a barrier and run the write-back loop. In half the runs the threads also wait for each other
after their first read, so both hold the same version and one check-and-set must be lost; in the
other half they run free. The counts are printed (pytest -s) and checked: the race happened."""

import threading

import pytest

from ansible_collections.codexops.runner.plugins.plugin_utils._store_writeback import write_back
from store_harness import AwsHarness, FileHarness, VaultHarness, auth_file, new_name

RUNS = 50


class ReadBarrier(object):
    """The store, whose first read waits until the other writer has read too."""

    def __init__(self, store, barrier):
        self.store, self.barrier, self.kind, self.reads = store, barrier, store.kind, 0

    def describe(self, name):
        return self.store.describe(name)

    def read(self, name):
        answer = self.store.read(name)
        self.reads += 1
        if self.reads == 1 and self.barrier is not None:
            self.barrier.wait(30)
        return answer

    def write(self, name, data, expected_version):
        return self.store.write(name, data, expected_version)


def race(harness, forced):
    name = new_name('race')
    harness.seed(name, auth_file(240))
    files = {'older': auth_file(120), 'newer': auth_file(60)}
    start = threading.Barrier(2)
    after_read = threading.Barrier(2) if forced else None
    stores = dict((who, ReadBarrier(harness.store(), after_read)) for who in files)
    outcome = {}

    def job(who):
        start.wait(30)
        try:
            outcome[who] = write_back(stores[who], name, files[who])
        except Exception as exc:  # pylint: disable=broad-except
            outcome[who] = exc

    threads = [threading.Thread(target=job, args=(who,)) for who in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    errors = dict((who, repr(value)) for who, value in outcome.items() if isinstance(value, Exception))
    assert errors == {} and len(outcome) == 2
    return files, outcome, harness.raw(name)[0].encode('utf-8')


@pytest.mark.parametrize('kind', ['file', 'vault', 'aws_secretsmanager'])
def test_the_newer_copy_wins_every_race(kind, request):
    if kind == 'vault':
        harness = VaultHarness(request.getfixturevalue('openbao'))
    elif kind == 'aws_secretsmanager':
        harness = AwsHarness(request.getfixturevalue('moto'))
    else:
        harness = FileHarness(request.getfixturevalue('tmp_path'))
    counts = dict(runs=0, newer_won=0, races_with_a_lost_cas=0, older_wrote_first=0, older_refused=0)
    for run in range(RUNS):
        files, outcome, final = race(harness, forced=run % 2 == 0)
        counts['runs'] += 1
        counts['newer_won'] += final == files['newer']
        lost = outcome['older']['cas_lost'] + outcome['newer']['cas_lost']
        counts['races_with_a_lost_cas'] += lost > 0
        counts['older_wrote_first'] += outcome['older']['written']
        counts['older_refused'] += outcome['older']['action'] == 'refuse'
        assert final == files['newer'], 'run %d: the older copy is in the store: %r' % (run, outcome)
        assert outcome['newer']['written']
    print('\n%s races: %s' % (kind, counts))
    assert counts['newer_won'] == RUNS
    # The forced half must each have lost one check-and-set: the race was real.
    assert counts['races_with_a_lost_cas'] >= RUNS // 2
