"""HTTP to steward (and to Nova, for flavors) over the CLI's keystoneauth
session, with steward's own error messages turned into CommandError
(OSC prints the message and exits 1)."""

import json

from keystoneauth1 import exceptions as ks_exc
from osc_lib import exceptions

from steward_nova.osc import plugin

# Nova answers flavors with their extra specs from 2.61 on.
COMPUTE_MICROVERSION = '2.61'


def error_message(service, method, url, status, text):
    """One line naming the call, the status and the service's own words:
    steward's `{"error": {"code", "message", "field"}}`, Nova's
    `{"itemNotFound": {"message"}}`, else the body's start."""
    detail = None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get('error')
        if isinstance(err, dict) and err.get('message'):
            detail = str(err['message'])
            if err.get('field'):
                detail += ' (field %s)' % err['field']
            if err.get('code'):
                detail = '%s: %s' % (err['code'], detail)
        else:
            for value in doc.values():
                if isinstance(value, dict) and value.get('message'):
                    detail = str(value['message'])
                    break
    if detail is None:
        detail = ' '.join((text or '').split())[:300] or '(empty body)'
    return '%s %s %s answered %s: %s' % (service, method, url, status,
                                         detail)


class StewardClient:
    """Steward's v1 API (and Nova's flavors) through one keystoneauth
    session."""

    def __init__(self, session, ks_filter, api_version='1',
                 endpoint_override=None):
        self.session = session
        self.ks_filter = ks_filter
        self.api_version = api_version
        self.endpoint_override = endpoint_override

    def _call(self, service, method, path, ks_filter, endpoint_override=None,
              headers=None, **kwargs):
        hdrs = {'Accept': 'application/json'}
        hdrs.update(headers or {})
        try:
            resp = self.session.request(
                path, method, headers=hdrs, endpoint_filter=ks_filter,
                endpoint_override=endpoint_override, raise_exc=False,
                **kwargs)
        except ks_exc.EndpointNotFound as e:
            raise exceptions.CommandError(
                'no %s endpoint in the service catalog (%s): register '
                'steward in Keystone (openstack service create --name '
                'steward %s; openstack endpoint create ...) or pass '
                '--os-steward-url' % (ks_filter['service_type'], e,
                                      plugin.SERVICE_TYPE)) from e
        except ks_exc.ConnectionError as e:
            raise exceptions.CommandError(
                'cannot reach %s for %s %s: %s' % (service, method, path,
                                                   e)) from e
        if resp.status_code >= 400:
            raise exceptions.CommandError(error_message(
                service, method, path, resp.status_code, resp.text))
        try:
            return resp.json()
        except ValueError as e:
            raise exceptions.CommandError(
                '%s %s %s answered %s with a body that is not JSON: %s'
                % (service, method, path, resp.status_code,
                   ' '.join(resp.text.split())[:200])) from e

    def get(self, path, params=None):
        return self._call('steward', 'GET', path, self.ks_filter,
                          self.endpoint_override, params=params)

    def post(self, path, body, params=None):
        return self._call('steward', 'POST', path, self.ks_filter,
                          self.endpoint_override, json=body, params=params)

    def compute_get(self, path, params=None):
        """GET from Nova's compute API (same session, same region and
        interface) at COMPUTE_MICROVERSION."""
        ks_filter = dict(self.ks_filter, service_type='compute')
        return self._call('nova', 'GET', path, ks_filter, headers={
            'OpenStack-API-Version': 'compute ' + COMPUTE_MICROVERSION,
            'X-OpenStack-Nova-API-Version': COMPUTE_MICROVERSION},
            params=params)
