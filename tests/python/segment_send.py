"""Sends known messages to a Segment-compatible host with the official Segment SDK.

usage: segment_send.py HOST WRITE_KEY N
Identifies anon-9 as user-9, tracks N "Report Exported" events (the even ones from anon-9),
and sends one page view. Exits 1 if the SDK reports any failed request.
"""
import sys

import segment.analytics as analytics

host, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
failures = []
analytics.write_key = key
analytics.host = host
analytics.gzip = True
analytics.max_retries = 0
analytics.on_error = lambda e, batch: failures.append(repr(e))
analytics.identify("user-9", {"plan": "team"}, anonymous_id="anon-9")
for i in range(n):
    user = None if i % 2 == 0 else "user-%d" % (i % 3)
    analytics.track(
        user_id=user,
        anonymous_id="anon-9" if user is None else None,
        event="Report Exported",
        properties={"feature": "export", "latency_ms": 20 + i, "status_code": 200},
    )
analytics.page("user-9", name="Pricing", properties={"path": "/pricing"})
analytics.flush()
analytics.shutdown()
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
