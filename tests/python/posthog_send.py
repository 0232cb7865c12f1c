"""Sends known events to a PostHog-compatible host with the official posthog SDK.

usage: posthog_send.py HOST API_KEY N
Links anon-1 to user-7 (alias), then captures N "generate" events, gzipped, in batches of 10.
Exits 1 if the SDK reports any failed request.
"""
import sys

from posthog import Posthog

host, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
failures = []
ph = Posthog(
    key,
    host=host,
    gzip=True,
    flush_at=10,
    max_retries=0,
    on_error=lambda e, batch: failures.append(repr(e)),
)
ph.alias(previous_id="user-7", distinct_id="anon-1")
for i in range(n):
    ph.capture(
        "generate clicked",
        distinct_id="anon-1" if i % 2 == 0 else "user-%d" % (i % 3),
        properties={
            "feature": "generate",
            "route": "/api/v1/generate",
            "latency_ms": 10 + i,
            "status": 500 if i % 5 == 0 else 200,
            "plan": "pro",
        },
    )
ph.flush()
ph.shutdown()
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
