"""Verifies one wasmhook delivery with the Standard Webhooks library, as docs/receiving.md shows.

Input on stdin: {"secret": "whsec_…", "headers": {...}, "body": "<exact body>"}.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

delivery = json.load(sys.stdin)
try:
    Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
except WebhookVerificationError as error:
    print(f"webhook-signature: {error}", file=sys.stderr)
    sys.exit(1)
print("verified")
