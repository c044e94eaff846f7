// A wasmhook receiver on Express (ESM: "type": "module" in package.json, or name the file
// .mjs; with CommonJS use `const express = require("express")` and the same code).
// WEBHOOK_SECRET is the whole `whsec_…` string the webhook was created with; PORT where to listen.
import express from "express";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET);
const seen = new Set(); // message ids already handled: keep them in your database instead
const app = express();

// express.raw keeps the exact bytes: the signature covers them, and express.json() would
// parse and lose them.
app.post("/hook", express.raw({ type: "*/*" }), (req, res) => {
  let event;
  try {
    // Checks webhook-signature and refuses a webhook-timestamp older than 5 minutes.
    event = webhook.verify(req.body, req.headers);
  } catch (error) {
    console.log(`refused: ${error.message}`);
    return res.status(400).send("bad signature");
  }
  const id = req.headers["webhook-id"];
  if (!seen.has(id)) {
    seen.add(id);
    console.log(`verified ${event.event} ${id}`); // hand the work to a queue, then answer
  }
  res.status(204).end();
});

const server = app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
