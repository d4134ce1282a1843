"""Stand-in for the get-pip bootstrap ansible-test downloads (unreachable offline).

ansible-test runs this with pip's own arguments: install pip with ensurepip, then let that pip
install what was asked for from the package index that is reachable.
"""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + args)
