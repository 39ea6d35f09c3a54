"""Container healthcheck: exits 0 when the service on this port answers /readyz with 200."""

import sys
import urllib.request

port = int(sys.argv[1])
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:  # refused, timed out, or an HTTP error status such as 503
    sys.exit(1)
