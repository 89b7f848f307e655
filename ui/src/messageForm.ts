// The send and broadcast forms' rules: the body `POST /messages/send` and
// `/messages/broadcast` take (`SendRequest`), checked before anything is sent.

import { parseJsonObject } from "./taskForm";

export interface MessageFields {
  sender: string;
  recipient: string;
  type: string;
  pattern: string;
  priority: string;
  topic: string;
  payload: string;
  ttl: string;
}

export function blankMessage(): MessageFields {
  return {
    sender: "dashboard",
    recipient: "",
    type: "task_request",
    pattern: "point_to_point",
    priority: "normal",
    topic: "",
    payload: "",
    ttl: "",
  };
}

/** The body of a send or broadcast, or the errors that stop it. */
export function messageBody(
  fields: MessageFields,
  broadcast: boolean,
): { ok: true; body: Record<string, unknown> } | { ok: false; errors: Partial<Record<keyof MessageFields, string>> } {
  const errors: Partial<Record<keyof MessageFields, string>> = {};
  const payload = parseJsonObject(fields.payload);
  if (!payload.ok) errors.payload = `payload ${payload.error}`;
  const body: Record<string, unknown> = { message_type: fields.type, priority: fields.priority };
  if (!broadcast) {
    body.pattern = fields.pattern;
    if (fields.pattern === "pub_sub") {
      if (fields.topic.trim() === "") errors.topic = "pub-sub needs a topic";
      else body.topic = fields.topic.trim();
    } else if (fields.recipient.trim() === "") errors.recipient = "choose the agent it goes to";
    else body.recipient_id = fields.recipient.trim();
  }
  if (fields.ttl.trim() !== "") {
    const ttl = Number(fields.ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 604_800) errors.ttl = "whole seconds from 1 to 604800";
    else body.ttl_seconds = ttl;
  }
  if (Object.keys(errors).length > 0 || !payload.ok) return { ok: false, errors };
  body.payload = payload.value;
  return { ok: true, body };
}
