"""Runs PyPI's scim2-tester suite (all of its checks, as `scim2 test` does) against a SCIM
base URL and prints the results as JSON, so the Rust test can assert on every check.

usage: python run_scim2_tester.py BASE_URL TOKEN
exit: 0 when every check succeeded, 1 otherwise, 2 when discovery itself failed.
"""
import json
import sys

from scim2_cli.session import Session
from scim2_tester import Status, check_server

base_url, token = sys.argv[1], sys.argv[2]
session = Session(
    url=base_url,
    headers={"Authorization": f"Bearer {token}"},
    verify=True,
    schemas=None,
    resource_types=None,
    service_provider_config=None,
)
try:
    # Reads /ResourceTypes, /Schemas and /ServiceProviderConfig, as the CLI does.
    client = session.client
except Exception as exc:  # discovery failed: no check could run
    print(json.dumps({"ok": False, "discovery_error": str(getattr(exc, "message", exc))}))
    sys.exit(2)

results = []
for r in check_server(client):
    results.append(
        {
            "status": r.status.name,
            "title": r.title,
            "resource_type": r.resource_type,
            "reason": r.reason,
        }
    )
ok = bool(results) and all(r["status"] == Status.SUCCESS.name for r in results)
print(json.dumps({"ok": ok, "results": results}))
sys.exit(0 if ok else 1)
