/**
 * The reason a fired trigger records: a one-line summary of whatever the alerting system POSTed. Known shapes first
 * (PagerDuty v3 webhooks, then a `title` as Grafana and Datadog send, then an Alertmanager `status` and alert name),
 * else the body's first characters. Never throws: a body that is not JSON, or JSON of any other shape, is text.
 */

/** Longest summary kept (characters). */
export const SUMMARY_MAX = 200;

/** Control characters and runs of whitespace become one space; the result is trimmed and cut to `SUMMARY_MAX`. */
export function sanitize(text: string): string {
  const clean = text
    .replace(/[\p{Cc}\p{Cf}\u2028\u2029]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length > SUMMARY_MAX ? `${clean.slice(0, SUMMARY_MAX - 1)}…` : clean;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

function fromJson(body: Record<string, unknown>): string | undefined {
  // PagerDuty (v3 webhooks): { event: { event_type: 'incident.triggered', data: { title } } }
  const event = obj(body.event);
  const eventType = str(event?.event_type);
  if (eventType) {
    const title = str(obj(event?.data)?.title);
    return title ? `PagerDuty ${eventType}: ${title}` : `PagerDuty ${eventType}`;
  }
  const alerts = Array.isArray(body.alerts) ? body.alerts : undefined;
  const status = str(body.status);
  // Grafana (its title already says [FIRING:n]) and Datadog's default payload ("[Triggered] ...").
  const title = str(body.title);
  if (title) return title;
  // Prometheus Alertmanager: { status: 'firing', alerts: [{ labels: { alertname } }], commonLabels, groupLabels }
  if (alerts && status) {
    const first = obj(alerts[0]);
    const name = str(obj(first?.labels)?.alertname) ?? str(obj(body.commonLabels)?.alertname) ?? str(obj(body.groupLabels)?.alertname);
    const more = alerts.length > 1 ? ` (+${alerts.length - 1} more)` : '';
    return name ? `Alertmanager ${status}: ${name}${more}` : `Alertmanager ${status}${more}`;
  }
  const message = str(body.message) ?? str(body.text) ?? str(body.summary);
  return message;
}

/** The reason for a fired trigger's action, from its request body (a string, or undefined when none); null when empty. */
export function summarizePayload(body: string | undefined): string | null {
  if (body === undefined || body.trim() === '') return null;
  let summary: string | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    const o = obj(parsed);
    if (o) summary = fromJson(o);
  } catch {
    // Not JSON: the text itself.
  }
  const out = sanitize(summary ?? body);
  return out === '' ? null : out;
}
