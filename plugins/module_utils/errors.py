# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception base every module catches.

Private to this collection. An error carries a stable `code` (it doubles as a verify problem code
where one applies) and a `message` that says what is wrong and how to fix it, never what a file or
an option contains. Errors cross the privilege boundary (a child that dropped to the runner user)
as (class name, code, message), so each subclass registers itself by name.
"""

_REGISTRY = {}


class CodexOpsError(Exception):
    """Something this collection refuses or cannot do; safe to show to the operator as it is."""

    default_code = 'error'

    def __init__(self, message, code=None):
        super(CodexOpsError, self).__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __init_subclass__(cls, **kwargs):
        super(CodexOpsError, cls).__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def to_wire(self):
        return {'class': self.__class__.__name__, 'code': self.code, 'message': self.message}


def from_wire(wire):
    """The error a child reported, as the same class in the parent."""
    cls = _REGISTRY.get(wire.get('class'), CodexOpsError)
    error = cls.__new__(cls)
    CodexOpsError.__init__(error, wire.get('message') or 'unknown error', wire.get('code'))
    return error


_REGISTRY['CodexOpsError'] = CodexOpsError
