"""StewardFilter: steward decides which candidate hosts are allowed.

One POST /v1/filter per scheduling request covers every host (filter_all),
instead of one call per host. With a StewardWeigher loaded it asks
/v1/filter?weigh=true and keeps the weights of the allowed hosts for the
weigher of the same request (handoff), which then makes no call: one round
trip per scheduling request. Fails open (see [steward] fail_open).
"""

from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils
from oslo_log import log as logging

from steward_nova import body
from steward_nova import client
from steward_nova import conf as steward_conf
from steward_nova import handoff
from steward_nova import siblings

CONF = steward_conf.CONF
LOG = logging.getLogger(__name__)


class StewardFilter(filters.BaseHostFilter):
    """Keeps the hosts steward allows: AZ-correct moves, role spread, ...

    Every failure (timeout, error, malformed answer, a bug here) passes all
    hosts when [steward] fail_open is True, else none.
    """

    # Like Nova's usage filters: a rebuild stays on its host, so steward's
    # placement policy has nothing to say about it.
    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if not hosts:
            return hosts
        try:
            # Whatever an earlier call for this request kept is stale now;
            # a call that fails must leave nothing for the weigher.
            handoff.drop(spec_obj)
            # BaseHostFilter applies RUN_ON_REBUILD in _filter_one, which
            # overriding filter_all bypasses: apply it the same way here.
            if (not self.RUN_ON_REBUILD
                    and scheduler_utils.request_is_rebuild(spec_obj)):
                return hosts
            return self._ask_steward(hosts, spec_obj)
        except client.CalloutError as e:
            return self._fail(hosts, spec_obj, e.kind, e.detail)
        except Exception as e:
            # A bug in the shim must not fail the boot either.
            LOG.debug('StewardFilter internal error', exc_info=True)
            return self._fail(hosts, spec_obj, 'shim_error',
                              '%s: %s' % (type(e).__name__, e))

    def host_passes(self, host_state, spec_obj):
        """Per-host entry point (Nova only uses it via _filter_one).

        One call carrying this one host; filter_all is what Nova runs.
        """
        return bool(self.filter_all([host_state], spec_obj))

    def _ask_steward(self, hosts, spec_obj):
        weigh = handoff.wanted()
        placed, complete = siblings.observe(
            spec_obj, hosts, str(spec_obj.instance_uuid),
            body.field(spec_obj, 'num_instances'))
        extra = {'siblings': placed} if placed or not complete else None
        if not complete:
            extra['siblings_complete'] = False
        # compact: hosts by index, weights as a plain array (docs/callout.md).
        answer, keys = client.call(
            '/v1/filter?weigh=true&compact=true' if weigh
            else '/v1/filter?compact=true', hosts, spec_obj, extra)
        compact = client.compact_answer(answer, len(keys))
        if compact is not None:
            indexes, weights = compact
        else:
            # A steward that predates compact answers names the hosts;
            # matched on (host, nodename), as Ironic hosts repeat the host
            # name.
            indexes, weights = client.allowed_indexes(answer, keys), None
        if indexes is None:
            passed, passed_keys = hosts, keys
        else:
            passed = [hosts[i] for i in indexes]
            passed_keys = [keys[i] for i in indexes]
        if LOG.isEnabledFor(logging.DEBUG):
            self._log_answer(answer, spec_obj, len(hosts), len(passed))
        if weigh and passed:
            if weights is not None:
                handoff.put(spec_obj, passed, passed_keys, weights)
            elif compact is None and answer.get('weights') is not None:
                self._keep_weights(answer, passed, passed_keys, spec_obj)
        return passed

    def _keep_weights(self, answer, passed, passed_keys, spec_obj):
        """Hand the weights of the allowed hosts to the weigher.

        The filter's own answer is good whatever its weights are: weights
        that break the contract are not kept (the weigher then asks
        /v1/weigh) and warned about, and the filter still filters. An
        answer without "weights" (a steward older than weigh=true) is no
        failure at all.
        """
        try:
            weights = client.check_weigh_answer(answer, passed_keys)
        except client.CalloutError as e:
            client.warn_failure(
                e.kind, 'weights: %s' % e.detail, '/v1/filter?weigh=true',
                client.request_id(spec_obj),
                'StewardFilter used the allowed hosts; the StewardWeigher '
                'asks /v1/weigh instead')
            return
        handoff.put(spec_obj, passed, passed_keys, weights)

    def _log_answer(self, answer, spec_obj, sent, kept):
        req = client.request_id(spec_obj)
        LOG.debug('Steward allowed %(kept)d of %(sent)d host(s) for instance '
                  '%(uuid)s (request %(req)s, profile %(profile)s, role '
                  '%(role)s, degraded %(degraded)s %(reasons)s)',
                  {'kept': kept, 'sent': sent,
                   'uuid': getattr(spec_obj, 'instance_uuid', None),
                   'req': req, 'profile': answer.get('profile'),
                   'role': answer.get('role'),
                   'degraded': answer.get('degraded'),
                   'reasons': answer.get('degraded_reasons') or ''})
        for r in answer.get('rejected') or ():
            LOG.debug('Steward rejected host %(host)s node %(node)s for '
                      'instance %(uuid)s: %(plugin)s: %(reason)s',
                      {'host': r.get('host'), 'node': r.get('nodename'),
                       'uuid': getattr(spec_obj, 'instance_uuid', None),
                       'plugin': r.get('plugin'), 'reason': r.get('reason')})

    def _fail(self, hosts, spec_obj, kind, detail):
        try:
            fail_open = CONF.steward.fail_open
            if fail_open:
                action = ('StewardFilter passed all %d host(s) unchecked '
                          '([steward] fail_open = True)' % len(hosts))
            else:
                action = ('StewardFilter passed no host ([steward] '
                          'fail_open = False); set it to True to schedule '
                          'without steward')
            LOG.debug('StewardFilter callout failed: %s: %s', kind, detail)
            client.warn_failure(kind, detail, '/v1/filter',
                                client.request_id(spec_obj), action)
        except Exception:
            fail_open = True
        return hosts if fail_open else []
