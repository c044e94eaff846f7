"""A wasmhook receiver on Flask.

WEBHOOK_SECRET is the whole `whsec_…` string the webhook was created with; PORT where to
listen. Run: `WEBHOOK_SECRET=whsec_… PORT=3000 python flask_app.py`.
"""
import os

from flask import Flask, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])
seen = set()  # message ids already handled: keep them in your database instead
app = Flask(__name__)


@app.post("/hook")
def receive():
    # get_data() is the exact bytes: the signature covers them, request.json would not keep them.
    try:
        # Checks webhook-signature and refuses a webhook-timestamp older than 5 minutes.
        event = webhook.verify(request.get_data(), dict(request.headers))
    except WebhookVerificationError as error:
        print(f"refused: {error}", flush=True)
        return "bad signature", 400
    message_id = request.headers["webhook-id"]
    if message_id not in seen:
        seen.add(message_id)
        print(f"verified {event['event']} {message_id}", flush=True)  # queue the work, then answer
    return "", 204


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
