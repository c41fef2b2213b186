"""A loopback image service answering what Nova and the OpenStack CLI ask
of Glance's v2 API, in memory.

    images = ImageStub().start()
    images.url                      # [glance] endpoint_override, catalog
    images.default['id']            # one active image, "cirros"

What Nova reads on a boot is the image schema (glanceclient builds its
model from GET /v2/schemas/image) and GET /v2/images/{id}; the fake virt
driver never downloads image data. A shelve makes Nova create a snapshot
image (POST /v2/images) that the unshelve reads and then deletes, so
create, update (PATCH, JSON patch add/replace/remove), delete and list
(with ?name=, ?id= and ?status= filters, as the CLI resolves names) work
too. The schema served is glanceclient's own copy of Glance's
(glanceclient.v2.image_schema), so every answer validates as a real
Glance's would. Tokens are not checked: it stands in for the image
service only, Keystone still guards Nova.
"""

import copy
import datetime
import http.server
import json
import threading
import urllib.parse
import uuid

from harness.httpstub import LoopbackServer

DEFAULT_IMAGE_ID = '5e1f0d0c-8b7a-4c1e-9a55-0c1d2e3f4a5b'


def _schema():
    try:
        from glanceclient.v2 import image_schema
        return copy.deepcopy(image_schema._BASE_SCHEMA)
    except ImportError:  # no glanceclient here: a schema that allows all
        return {'name': 'image', 'properties': {},
                'additionalProperties': {'type': 'string'}, 'links': []}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


class ImageStub(LoopbackServer):
    def __init__(self):
        self.images = {}
        self.requests = []
        self._lock = threading.Lock()
        self.schema = _schema()
        self.default = self.add({'id': DEFAULT_IMAGE_ID, 'name': 'cirros',
                                 'status': 'active'})
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _answer(self, status, body=None, ctype='application/json'):
                raw = b'' if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                return json.loads(raw) if raw else {}

            def _route(self, method):
                url = urllib.parse.urlsplit(self.path)
                stub.requests.append((method, self.path))
                parts = [p for p in url.path.split('/') if p]
                query = urllib.parse.parse_qs(url.query)
                try:
                    status, body = stub.handle(method, parts, query,
                                               self._body())
                except (ValueError, KeyError) as e:
                    status, body = 400, {'message': str(e)}
                self._answer(status, body)

            def do_GET(self):
                self._route('GET')

            def do_POST(self):
                self._route('POST')

            def do_PATCH(self):
                self._route('PATCH')

            def do_DELETE(self):
                self._route('DELETE')

            def do_PUT(self):
                self._route('PUT')

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def add(self, fields):
        """Store an image (defaults as Glance gives them); return it."""
        image_id = fields.get('id') or str(uuid.uuid4())
        now = _now()
        image = {
            'id': image_id, 'name': fields.get('name'),
            'status': fields.get('status', 'queued'),
            'visibility': fields.get('visibility', 'public'),
            'protected': False, 'os_hidden': False,
            'checksum': None, 'os_hash_algo': None, 'os_hash_value': None,
            'size': fields.get('size', 16 * 1024 * 1024),
            'virtual_size': None, 'min_disk': fields.get('min_disk', 0),
            'min_ram': fields.get('min_ram', 0),
            'disk_format': fields.get('disk_format', 'qcow2'),
            'container_format': fields.get('container_format', 'bare'),
            'owner': fields.get('owner'), 'tags': list(
                fields.get('tags') or []),
            'created_at': now, 'updated_at': now,
            'self': '/v2/images/%s' % image_id,
            'file': '/v2/images/%s/file' % image_id,
            'schema': '/v2/schemas/image',
        }
        for key, value in fields.items():
            if key not in image:
                image[key] = value
        with self._lock:
            self.images[image_id] = image
        return image

    def handle(self, method, parts, query, body):
        """(status, body) of one request on /v2/..."""
        if not parts:
            return 300, {'versions': [{
                'id': 'v2.16', 'status': 'CURRENT', 'links': [{
                    'rel': 'self', 'href': self.url + '/v2/'}]}]}
        if parts[0] != 'v2':
            return 404, {'message': 'no such path'}
        if parts[1:] == ['schemas', 'image'] and method == 'GET':
            return 200, self.schema
        if parts[1:] == ['images']:
            if method == 'GET':
                return 200, {'images': self._list(query),
                             'schema': '/v2/schemas/images',
                             'first': '/v2/images'}
            if method == 'POST':
                return 201, self.add(dict(body))
        if len(parts) >= 3 and parts[1] == 'images':
            return self._one(method, parts[2], parts[3:], body)
        return 404, {'message': 'the image stub has no %s %s' % (
            method, '/'.join(parts))}

    def _list(self, query):
        with self._lock:
            found = list(self.images.values())
        for key in ('name', 'id', 'status', 'visibility'):
            if key in query:
                wanted = query[key][0]
                if wanted.startswith('in:'):
                    wanted = wanted[3:].split(',')
                else:
                    wanted = [wanted]
                found = [i for i in found if str(i.get(key)) in wanted]
        return found

    def _one(self, method, image_id, rest, body):
        with self._lock:
            image = self.images.get(image_id)
        if image is None:
            return 404, {'message': 'No image found with ID %s' % image_id}
        if rest:  # /file, /tags, /actions: the stub stores no data
            if method == 'PUT' and rest == ['file']:
                image['status'] = 'active'
                return 204, None
            return 204 if method in ('PUT', 'DELETE') else 404, None
        if method == 'GET':
            return 200, image
        if method == 'DELETE':
            with self._lock:
                self.images.pop(image_id, None)
            return 204, None
        if method == 'PATCH':
            for op in body if isinstance(body, list) else []:
                key = op['path'].lstrip('/')
                if op['op'] in ('add', 'replace'):
                    image[key] = op['value']
                elif op['op'] == 'remove':
                    image.pop(key, None)
            image['updated_at'] = _now()
            return 200, image
        return 405, {'message': 'method %s' % method}
