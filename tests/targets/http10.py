"""Python's standard library server in its default HTTP/1.0 mode, answering GET with a JSON body
that has no Content-Length: each body ends where the server closes the connection (RFC 9112
section 6.3). `make test-targets` checks a2a-bench reads these answers with no error.
Usage: http10.py PORT"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
