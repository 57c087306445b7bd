# The python example of parker's README: serve a listing of the current
# directory. The port defaults to 8000 (as in the README); tests pass a free
# one as the first argument.
import sys
from http.server import SimpleHTTPRequestHandler, HTTPServer


def run():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"listen on http://127.0.0.1:{port}", flush=True)
    server_address = ('127.0.0.1', port)
    httpd = HTTPServer(server_address, SimpleHTTPRequestHandler)
    httpd.serve_forever()


run()
