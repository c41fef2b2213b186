"""The ``[steward]`` options of nova.conf, registered on Nova's own CONF.

Importing this module registers them, so the filter and the weigher can read
``CONF.steward.*`` as soon as nova-scheduler loads either class.
"""

import nova.conf
from oslo_config import cfg

CONF = nova.conf.CONF

GROUP = cfg.OptGroup(
    'steward',
    title='Nova Steward callout',
    help='How the StewardFilter and StewardWeigher reach steward. '
         'Together they make one HTTP round trip per scheduling '
         'request (the weigher alone: one call) and fail open.')

OPTS = [
    cfg.StrOpt(
        'endpoint',
        default='http://127.0.0.1:8790',
        help='Base URL of steward; /v1/filter and /v1/weigh are appended.'),
    cfg.FloatOpt(
        'timeout',
        default=0.5,
        min=0.001,
        help='Seconds to wait for steward (connect, and then each read). '
             'A scheduling request waits at most about twice this per '
             'callout before the shim fails open.'),
    cfg.StrOpt(
        'token',
        secret=True,
        help='Static token sent as "Authorization: Bearer <token>". '
             'Ignored when token_file is set.'),
    cfg.StrOpt(
        'token_file',
        secret=True,
        help='File holding the token (surrounding whitespace stripped). '
             'Re-read when it changes, so a token can be rotated without '
             'restarting nova-scheduler. Takes precedence over token.'),
    cfg.BoolOpt(
        'fail_open',
        default=True,
        help='What to do when steward cannot answer. True: the filter '
             'passes every host and the weigher gives equal weights, so '
             'Nova schedules as if steward were not there. False: the '
             'filter passes no host (requests fail with NoValidHost) and '
             'the weigher still gives equal weights.'),
    cfg.FloatOpt(
        'weight_multiplier',
        default=1.0,
        help='Multiplier of the StewardWeigher\'s normalised weight. '
             'Overridden per aggregate by the metadata key '
             'steward_weight_multiplier (the smallest value wins when a '
             'host is in several aggregates that set it).'),
    cfg.FloatOpt(
        'warn_interval',
        default=60.0,
        min=0.0,
        help='Seconds between two warnings of the same kind of callout '
             'failure (timeout, unreachable, bad status, malformed '
             'answer, shim error). Repeats in between are counted and '
             'reported with the next warning.'),
    cfg.BoolOpt(
        'send_instance_uuids',
        default=True,
        help='Send the uuids of the instances on each host. Steward needs '
             'them to count server group members and roles per host; turn '
             'off only to shrink very large requests.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    """Entry point for oslo-config-generator (namespace steward_nova)."""
    return {GROUP: OPTS}


register_opts(CONF)
