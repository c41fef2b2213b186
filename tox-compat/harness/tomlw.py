"""A small TOML writer for the configs the harness gives to peers.

Handles what those configs use: nested tables of strings, numbers, bools
and lists of scalars or of tables (written inline: `http = [{name = "x"}]`,
an array of tables such as [[rebalance.hooks.http]]). tomllib only reads,
and Nova's venv has no writer.
"""

import json
import math


def _scalar(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError('TOML value must be finite: %r' % v)
        return repr(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string.
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return '[' + ', '.join(_scalar(x) for x in v) + ']'
    if isinstance(v, dict):
        return '{' + ', '.join('%s = %s' % (_key(k), _scalar(x))
                               for k, x in v.items()) + '}'
    raise TypeError('cannot write %r as TOML' % (v,))


def _key(k):
    k = str(k)
    if k and all(c.isalnum() or c in '_-' for c in k):
        return k
    return json.dumps(k)


def dumps(data):
    out = []

    def table(prefix, tbl):
        scalars = [(k, v) for k, v in tbl.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in tbl.items() if isinstance(v, dict)]
        if prefix:
            out.append('[%s]' % '.'.join(_key(p) for p in prefix))
        for k, v in scalars:
            out.append('%s = %s' % (_key(k), _scalar(v)))
        if prefix or scalars:
            out.append('')
        for k, v in tables:
            table(prefix + [k], v)

    table([], data)
    return '\n'.join(out)
