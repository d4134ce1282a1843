#!/bin/sh
# The same job with the collection: the provision playbook, then the verify playbook.
set -e
ansible-playbook codexops.runner.provision "$@"
ansible-playbook codexops.runner.verify "$@"
