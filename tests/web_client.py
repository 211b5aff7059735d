"""One plain HTTP GET, read to its end: how the soak, the peers benchmark and the host tests check a
web server is up and fetch its CSRF cookie."""

import http.client


def get(host, port, path, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()
