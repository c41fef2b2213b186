"""Build-once templates shared by test runs (a synced Keystone database,
Nova's and Placement's schema dumps...).

A template is keyed by everything that shapes it (peer version, config
text, venv path), built in a scratch directory and renamed into place, so
a reader never sees half a template. A file lock keeps parallel test
processes from building the same one twice. The cache lives in
$STEWARD_HARNESS_CACHE, else <tmp>/steward-harness-cache-<uid>; deleting
it is always safe.
"""

import fcntl
import hashlib
import os
import shutil
import tempfile


def cache_dir():
    path = os.environ.get('STEWARD_HARNESS_CACHE') or os.path.join(
        tempfile.gettempdir(), 'steward-harness-cache-%d' % os.getuid())
    os.makedirs(path, exist_ok=True)
    return path


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()[:16]


def build_once(key, builder):
    """The directory of template `key`; `builder(scratch_dir)` fills it
    the first time. A failed build leaves nothing behind."""
    root = cache_dir()
    final = os.path.join(root, key)
    if os.path.isdir(final):
        return final
    with open(os.path.join(root, key + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(final):
            return final
        scratch = tempfile.mkdtemp(prefix=key + '.building-', dir=root)
        try:
            builder(scratch)
            os.rename(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return final
