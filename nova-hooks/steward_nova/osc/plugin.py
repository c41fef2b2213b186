"""OpenStackClient plugin interface for `openstack steward ...`.

python-openstackclient loads this module through the
`openstack.cli.extension` entry point named `steward` (API_NAME), adds
the global options below and calls make_client() the first time a
command asks for `self.app.client_manager.steward`. Commands come from the
`openstack.steward.v1` entry points.
"""

import logging

from osc_lib import exceptions
from osc_lib import utils

LOG = logging.getLogger(__name__)

SERVICE_TYPE = 'scheduler-steward'
DEFAULT_API_VERSION = '1'

API_NAME = 'steward'
API_VERSION_OPTION = 'os_steward_api_version'
API_VERSIONS = {'1': 'steward_nova.osc.client.StewardClient'}


def _client_class(version):
    if version not in API_VERSIONS:
        raise exceptions.UnsupportedVersion(
            '--os-steward-api-version %s is not supported; steward speaks %s'
            % (version, ', '.join(sorted(API_VERSIONS))))
    from steward_nova.osc import client
    return client.StewardClient


def make_client(instance):
    """A StewardClient on the CLI's keystoneauth session: the endpoint
    from --os-steward-url, else the cloud's
    scheduler_steward_endpoint_override, else the catalog."""
    version = instance._api_version[API_NAME]
    cls = _client_class(version)
    options = instance._cli_options
    url = (options.config.get('steward_url')
           or options.get_endpoint(SERVICE_TYPE))
    LOG.debug('steward client %s, endpoint %s', cls.__name__,
              url or 'from the catalog')
    return cls(session=instance.session,
               ks_filter={'service_type': SERVICE_TYPE,
                          'region_name': instance.region_name,
                          'interface': instance.interface},
               api_version=version, endpoint_override=url or None)


def build_option_parser(parser):
    parser.add_argument(
        '--os-steward-api-version', metavar='<steward-api-version>',
        default=utils.env('OS_STEWARD_API_VERSION',
                          default=DEFAULT_API_VERSION),
        help='Nova Steward API version, default=%s (Env: '
             'OS_STEWARD_API_VERSION)' % DEFAULT_API_VERSION)
    parser.add_argument(
        '--os-steward-url', metavar='<url>',
        default=utils.env('OS_STEWARD_URL'),
        help='Nova Steward endpoint (e.g. http://steward:8790), instead '
             'of the service catalog\'s %s endpoint (Env: OS_STEWARD_URL)'
             % SERVICE_TYPE)
    return parser
