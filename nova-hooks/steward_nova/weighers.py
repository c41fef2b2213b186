"""StewardWeigher: steward's raw weight per host (steal, spread, ...).

The weights usually come with StewardFilter's answer for the same request
(/v1/filter?weigh=true, see handoff): no call at all. Otherwise (filter not
enabled or failed, hosts it did not see) one POST /v1/weigh per request
covers every host (weigh_objects). Nova's handler normalises the raw
weights to 0..1 and applies weight_multiplier. On any failure every host
weighs 0.0, which the handler turns into no preference at all.
"""

import itertools
import operator

from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
from oslo_log import log as logging

from steward_nova import client
from steward_nova import conf as steward_conf
from steward_nova import handoff

CONF = steward_conf.CONF
LOG = logging.getLogger(__name__)

# Aggregate metadata key overriding [steward] weight_multiplier.
MULTIPLIER_KEY = 'steward_weight_multiplier'

_AGGREGATES = operator.attrgetter('aggregates')
_OBJ = operator.attrgetter('obj')


class _Multipliers(dict):
    """{HostState: its multiplier} of the hosts of one weigh_objects, whose
    bound __getitem__ stands in for weight_multiplier: Nova's handler then
    calls it once per host, and a dict lookup is a C call that does not
    read the host. Any other host (another request's, weighed at the same
    time by this weigher) is answered by weight_multiplier itself."""

    __slots__ = ('weigher',)

    def __missing__(self, host_state):
        return type(self.weigher).weight_multiplier(self.weigher, host_state)


class StewardWeigher(weights.BaseHostWeigher):

    # [steward] weight_multiplier as read at the start of the last
    # weigh_objects: the handler then asks weight_multiplier for every
    # host, and an oslo.config lookup per host costs more than the rest of
    # the idiom together.
    _config_multiplier = None
    # {id(aggregate): (aggregate, sets steward_weight_multiplier?)}, made
    # anew by each weigh_objects, for the handler's weight_multiplier
    # calls that follow it. Holding the aggregate keeps its id its own.
    _sets_multiplier = None

    def __init__(self):
        super().__init__()
        # Nova builds its weighers once, at start: from now on the filter
        # asks for the weights along with its answer.
        handoff.want()

    def weight_multiplier(self, host_state):
        default = self._config_multiplier
        if default is None:
            default = CONF.steward.weight_multiplier
        # Nova's idiom (get_weight_multiplier) reads the metadata of every
        # aggregate of every host through oslo.versionedobjects; hosts share
        # a few aggregates, and most set no multiplier: then the answer is
        # the default, as Nova's own function gives it. Any aggregate that
        # sets one: Nova's function decides (min, casting, its warning).
        memo = self._sets_multiplier
        if memo is None:
            memo = self._sets_multiplier = {}
        for aggregate in getattr(host_state, 'aggregates', None) or ():
            seen = memo.get(id(aggregate))
            if seen is None or seen[0] is not aggregate:
                metadata = getattr(aggregate, 'metadata', None) or {}
                seen = (aggregate, MULTIPLIER_KEY in metadata)
                if len(memo) < 10000:
                    memo[id(aggregate)] = seen
            if seen[1]:
                return scheduler_utils.get_weight_multiplier(
                    host_state, MULTIPLIER_KEY, default)
        return default

    def weigh_objects(self, weighed_obj_list, weight_properties):
        hosts = list(map(_OBJ, weighed_obj_list))
        if not hosts:
            return []
        try:
            self._config_multiplier = CONF.steward.weight_multiplier
        except Exception:
            self._config_multiplier = None
        self._sets_multiplier = {}
        self._answer_multipliers(hosts)
        try:
            kept = handoff.take(weight_properties, hosts)
            if kept is not None:
                return kept
            answer, keys = client.call('/v1/weigh', hosts, weight_properties)
            result = client.check_weigh_answer(answer, keys)
            if answer.get('degraded'):
                LOG.debug('Steward weighed %(n)d host(s) for instance '
                          '%(uuid)s degraded: %(reasons)s',
                          {'n': len(hosts),
                           'uuid': getattr(weight_properties,
                                           'instance_uuid', None),
                           'reasons': answer.get('degraded_reasons')})
            return result
        except client.CalloutError as e:
            return self._fail(hosts, weight_properties, e.kind, e.detail)
        except Exception as e:
            LOG.debug('StewardWeigher internal error', exc_info=True)
            return self._fail(hosts, weight_properties, 'shim_error',
                              '%s: %s' % (type(e).__name__, e))

    def _answer_multipliers(self, hosts):
        """When no aggregate of `hosts` sets steward_weight_multiplier (the
        usual case), every one of them weighs [steward] weight_multiplier:
        the handler's weight_multiplier calls that follow are answered
        from one dict (_Multipliers). Otherwise, or when anything here is
        unusual, weight_multiplier answers each host itself."""
        table = None
        default = self._config_multiplier
        try:
            if default is not None:
                aggregates = list(itertools.chain.from_iterable(
                    map(_AGGREGATES, hosts)))
                # Hosts share a few aggregates: each looked at once.
                seen = dict(zip(map(id, aggregates), aggregates,
                                strict=True))
                if not any(MULTIPLIER_KEY in (
                        getattr(aggregate, 'metadata', None) or {})
                        for aggregate in seen.values()):
                    table = _Multipliers(dict.fromkeys(hosts, default))
                    table.weigher = self
        except Exception:
            # A host without a list of aggregates, an unhashable host:
            # weight_multiplier copes with each.
            table = None
        if table is not None:
            self.weight_multiplier = table.__getitem__
        else:
            self.__dict__.pop('weight_multiplier', None)

    def _weigh_object(self, host_state, weight_properties):
        """Per-host entry point required by BaseWeigher (Nova calls
        weigh_objects): one call carrying this one host.
        """
        return self.weigh_objects(
            [weights.WeighedHost(host_state, 0.0)], weight_properties)[0]

    def _fail(self, hosts, spec_obj, kind, detail):
        try:
            LOG.debug('StewardWeigher callout failed: %s: %s', kind, detail)
            client.warn_failure(
                kind, detail, '/v1/weigh', client.request_id(spec_obj),
                'StewardWeigher gave all %d host(s) equal weights' %
                len(hosts))
        except Exception:
            # Logging must never be what fails a boot.
            pass
        return [0.0] * len(hosts)
