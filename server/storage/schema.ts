/**
 * The SQLite schema (drizzle). Migrations in `migrations/` are generated from this file with `npm run db:generate`
 * and applied at boot; never edit a generated migration, add a new one.
 *
 * Conventions: times are epoch milliseconds (INTEGER); JSON columns hold the wire shapes of `sdk/core/types.ts`
 * and `sdk/protocol.ts` as text. Every table other engineers use is here so there is one migration history.
 */
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import type { JsonValue, Prerequisite, Rule, SegmentRule, Serve, Target, Variant } from '@aviary/sdk/core';
import type { Change } from '@aviary/sdk/protocol';

/** An environment. `version` is bumped inside every writing transaction that changes what its SDKs see. */
export const environments = sqliteTable('environments', {
  key: text('key').primaryKey(),
  name: text('name').notNull(),
  version: integer('version').notNull().default(0),
  createdAt: integer('created_at').notNull(),
  /** Change requests (CONTRACT §11): state changes in this environment wait for another actor's approval. */
  requireApproval: integer('require_approval', { mode: 'boolean' }).notNull().default(false),
});

/** A flag's definition, shared by all environments. `revision` is bumped on every definition change (ETag). */
export const flags = sqliteTable(
  'flags',
  {
    key: text('key').primaryKey(),
    kind: text('kind', { enum: ['boolean', 'string', 'number', 'json'] }).notNull(),
    variants: text('variants', { mode: 'json' }).$type<Variant[]>().notNull(),
    description: text('description').notNull().default(''),
    tags: text('tags', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    archived: integer('archived', { mode: 'boolean' }).notNull().default(false),
    revision: integer('revision').notNull().default(1),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('flags_archived_idx').on(t.archived)],
);

/** The part of a FlagState stored as JSON; `version` lives in its own column. */
export interface StoredFlagState {
  enabled: boolean;
  offVariant: string;
  /** CONTRACT §12; absent when the flag requires none. */
  prerequisites?: Prerequisite[];
  targets: Target[];
  rules: Rule[];
  fallthrough: Serve;
}

/** A flag's state in one environment, plus kill-switch bookkeeping. */
export const flagStates = sqliteTable(
  'flag_states',
  {
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    state: text('state', { mode: 'json' }).$type<StoredFlagState>().notNull(),
    version: integer('version').notNull().default(1),
    killedAt: integer('killed_at'),
    killReason: text('kill_reason'),
    /** The exact state before `kill-all`, restored by `revive-all`; null when the flag was not killed by a panic. */
    panicSavedState: text('panic_saved_state', { mode: 'json' }).$type<StoredFlagState>(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag] }), index('flag_states_flag_idx').on(t.flag)],
);

/** A segment (cohort), shared by all environments. */
export const segments = sqliteTable('segments', {
  key: text('key').primaryKey(),
  description: text('description').notNull().default(''),
  included: text('included', { mode: 'json' }).$type<string[]>().notNull(),
  excluded: text('excluded', { mode: 'json' }).$type<string[]>().notNull(),
  rules: text('rules', { mode: 'json' }).$type<SegmentRule[]>().notNull(),
  revision: integer('revision').notNull().default(1),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** An API token. Only the SHA-256 of the secret is stored; `prefix` is shown so people can tell tokens apart. */
export const tokens = sqliteTable(
  'tokens',
  {
    id: text('id').primaryKey(),
    kind: text('kind', { enum: ['admin', 'sdk', 'relay'] }).notNull(),
    environment: text('environment').references(() => environments.key, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /**
     * SDK keys only: a client-side key (public: shipped in browser and mobile apps, CONTRACT §16). What it reports
     * can never decide a canary by itself (server/canary/evidence.ts).
     */
    clientSide: integer('client_side', { mode: 'boolean' }).notNull().default(false),
    hash: text('hash').notNull(),
    prefix: text('prefix').notNull(),
    createdAt: integer('created_at').notNull(),
    lastUsedAt: integer('last_used_at'),
    revokedAt: integer('revoked_at'),
    /** Admin tokens (CONTRACT §14): `admin` | `editor` | `oncall` | `viewer`; null for SDK and relay keys. */
    role: text('role'),
    /** Admin (editor/oncall) and relay tokens: the environments they may change or read, as a JSON list; null: all. */
    environments: text('environments'),
    /** When the token stops working (epoch ms); null: never. Rotation sets it on the replaced token. */
    expiresAt: integer('expires_at'),
    /** The token that replaced this one by rotation (its id). */
    replacedBy: text('replaced_by'),
  },
  (t) => [index('tokens_hash_idx').on(t.hash)],
);

/** Every mutation: who, when, what, before and after. Append-only. */
export const auditLog = sqliteTable(
  'audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    actorTokenId: text('actor_token_id'),
    actorName: text('actor_name').notNull(),
    /** What kind of actor (CONTRACT §14): `token`, `person`, `schedule`, `trigger`, `canary-guard`, `system`. */
    actorKind: text('actor_kind'),
    /** A person signed in with OpenID Connect: the subject and email. */
    actorSubject: text('actor_subject'),
    actorEmail: text('actor_email'),
    action: text('action').notNull(),
    resourceType: text('resource_type').notNull(),
    resourceKey: text('resource_key').notNull(),
    environment: text('environment'),
    before: text('before', { mode: 'json' }).$type<JsonValue>(),
    after: text('after', { mode: 'json' }).$type<JsonValue>(),
    reason: text('reason'),
  },
  (t) => [index('audit_at_idx').on(t.at), index('audit_resource_idx').on(t.resourceType, t.resourceKey), index('audit_env_idx').on(t.environment)],
);

/** One row per committed write per environment: the Delta SDKs resume from. Pruned to the last N versions. */
export const changeLog = sqliteTable(
  'change_log',
  {
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    changes: text('changes', { mode: 'json' }).$type<Change[]>().notNull(),
    at: integer('at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.environment, t.version] })],
);

/**
 * Metrics reports already counted: the primary key makes ingestion exactly-once. Scoped by the SDK key that sent the
 * report, so a report sent with one key can never make another key's report look like a duplicate.
 */
export const sdkReports = sqliteTable(
  'sdk_reports',
  {
    tokenId: text('token_id').notNull().default(''),
    sdkId: text('sdk_id').notNull(),
    seq: integer('seq').notNull(),
    receivedAt: integer('received_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tokenId, t.sdkId, t.seq] }), index('sdk_reports_received_idx').on(t.receivedAt)],
);

/** Evaluations and outcomes per flag variant per minute. `variant` is '' for the caller's default. */
export const metricsMinute = sqliteTable(
  'metrics_minute',
  {
    environment: text('environment').notNull(),
    flag: text('flag').notNull(),
    variant: text('variant').notNull(),
    minute: integer('minute').notNull(),
    evaluations: integer('evaluations').notNull().default(0),
    reasons: text('reasons', { mode: 'json' }).$type<Record<string, number>>().notNull().default(sql`'{}'`),
    outcomes: integer('outcomes').notNull().default(0),
    errors: integer('errors').notNull().default(0),
    latency: text('latency', { mode: 'json' }).$type<JsonValue>(),
    valueSum: real('value_sum').notNull().default(0),
    valueCount: integer('value_count').notNull().default(0),
  },
  // The minute index lets retention delete old minutes in small chunks without scanning the table.
  (t) => [primaryKey({ columns: [t.environment, t.flag, t.variant, t.minute] }), index('metrics_minute_minute_idx').on(t.minute)],
);

/** A canary of one flag in one environment. `document` is the CONTRACT §4 document. */
export const canaries = sqliteTable(
  'canaries',
  {
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    document: text('document', { mode: 'json' }).$type<JsonValue>().notNull(),
    state: text('state', { enum: ['running', 'paused', 'rolled_back', 'promoted', 'completed'] }).notNull(),
    stageIndex: integer('stage_index').notNull().default(0),
    stageStartedAt: integer('stage_started_at').notNull(),
    pausedAt: integer('paused_at'),
    lastDecision: text('last_decision', { mode: 'json' }).$type<JsonValue>(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag] })],
);

/**
 * The canary guard's evidence: what SDKs reported for a canary's two variants while one comparison window was open,
 * per pool (`server`: server-side keys, counted whole; `client`: client-side keys, each instance's and each key's
 * per-minute share capped). `max_unit_*` are the largest contributions of one client unit (one SDK instance over the
 * window, or one key in one minute of arrival): the guard's decision must survive removing the worst of them
 * (docs/canary-analysis.md). `keys` lists the SDK keys (token ids) that contributed.
 */
export const canaryEvidence = sqliteTable(
  'canary_evidence',
  {
    environment: text('environment').notNull(),
    flag: text('flag').notNull(),
    windowStartedAt: integer('window_started_at').notNull(),
    variant: text('variant').notNull(),
    pool: text('pool', { enum: ['server', 'client'] }).notNull(),
    evaluations: integer('evaluations').notNull().default(0),
    outcomes: integer('outcomes').notNull().default(0),
    errors: integer('errors').notNull().default(0),
    latency: text('latency', { mode: 'json' }).$type<JsonValue>(),
    instances: integer('instances').notNull().default(0),
    keys: text('keys', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    maxUnitOutcomes: integer('max_unit_outcomes').notNull().default(0),
    maxUnitErrors: integer('max_unit_errors').notNull().default(0),
    maxUnitLatency: integer('max_unit_latency').notNull().default(0),
    /** Outcomes left out by the per-instance and per-key-minute caps (client pool). */
    cappedOutcomes: integer('capped_outcomes').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag, t.windowStartedAt, t.variant, t.pool] })],
);

/**
 * One contributor to a canary window's evidence: `unit` is `i:<tokenId>:<sdkId>` (an SDK instance) or, for
 * client-side keys, `k:<tokenId>:<minute of arrival>` (one key's burst). Holds what it contributed so far, so the
 * caps and the largest-unit figures of `canary_evidence` can be kept at ingest. Pruned with the window.
 */
export const canaryEvidenceUnits = sqliteTable(
  'canary_evidence_units',
  {
    environment: text('environment').notNull(),
    flag: text('flag').notNull(),
    windowStartedAt: integer('window_started_at').notNull(),
    variant: text('variant').notNull(),
    unit: text('unit').notNull(),
    outcomes: integer('outcomes').notNull().default(0),
    errors: integer('errors').notNull().default(0),
    latencySamples: integer('latency_samples').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag, t.windowStartedAt, t.variant, t.unit] })],
);

/**
 * Small server bookkeeping. `running` is set at boot and removed on a clean shutdown: finding it at boot means the
 * previous process died (or the file is a copy of a running database), see `recoverAfterUncleanStop`.
 */
export const serverState = sqliteTable('server_state', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/**
 * Replicas (PostgreSQL; on SQLite the table exists for parity and stays empty): one lease per background duty, held by
 * one replica until `expires_at` (the database's clock, epoch ms). See server/cluster/leases.ts.
 */
export const leases = sqliteTable('leases', {
  duty: text('duty').primaryKey(),
  holder: text('holder').notNull(),
  expiresAt: integer('expires_at').notNull(),
});

/**
 * Replicas (PostgreSQL; empty on SQLite): the SDKs connected to each replica, per environment, as a JSON list, so
 * receipts and the SDK list count every replica's SDKs. See server/cluster/presence.ts.
 */
export const replicaSdks = sqliteTable(
  'replica_sdks',
  {
    replica: text('replica').notNull(),
    environment: text('environment').notNull(),
    sdks: text('sdks').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.replica, t.environment] })],
);

/**
 * Every version a flag's state has had in an environment (CONTRACT §11 history, `?at=`, revert): written in the same
 * transaction as the state itself, with who, when and why.
 */
export const flagStateHistory = sqliteTable(
  'flag_state_history',
  {
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    state: text('state', { mode: 'json' }).$type<StoredFlagState>().notNull(),
    at: integer('at').notNull(),
    actorTokenId: text('actor_token_id'),
    actorName: text('actor_name').notNull(),
    action: text('action').notNull(),
    reason: text('reason'),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag, t.version] }), index('flag_state_history_at_idx').on(t.environment, t.flag, t.at)],
);

/** Scheduled changes (CONTRACT §11): run once, through the writer, by the replica that owns the `schedules` duty. */
export const schedules = sqliteTable(
  'schedules',
  {
    id: text('id').primaryKey(),
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    at: integer('at').notNull(),
    action: text('action', { enum: ['kill', 'revive', 'state'] }).notNull(),
    state: text('state', { mode: 'json' }).$type<StoredFlagState>(),
    reason: text('reason'),
    status: text('status', { enum: ['pending', 'done', 'failed', 'cancelled'] }).notNull(),
    error: text('error'),
    authorTokenId: text('author_token_id'),
    authorName: text('author_name').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    ranAt: integer('ran_at'),
  },
  (t) => [index('schedules_due_idx').on(t.status, t.at), index('schedules_flag_idx').on(t.environment, t.flag)],
);

/** Change requests (CONTRACT §11): a state change held for another actor's approval. */
export const changeRequests = sqliteTable(
  'change_requests',
  {
    id: text('id').primaryKey(),
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    baseVersion: integer('base_version').notNull(),
    state: text('state', { mode: 'json' }).$type<StoredFlagState>().notNull(),
    reason: text('reason'),
    status: text('status', { enum: ['pending', 'approved', 'rejected', 'applied'] }).notNull(),
    authorTokenId: text('author_token_id'),
    authorName: text('author_name').notNull(),
    reviewerTokenId: text('reviewer_token_id'),
    reviewerName: text('reviewer_name'),
    reviewReason: text('review_reason'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('change_requests_env_status_idx').on(t.environment, t.status)],
);

/** Outbound webhooks (CONTRACT §13): what to send where, signed per Standard Webhooks with `secret`. */
export const webhooks = sqliteTable('webhooks', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  url: text('url').notNull(),
  /** Event types subscribed to (JSON array). */
  events: text('events', { mode: 'json' }).$type<string[]>().notNull(),
  /** Environments (JSON array), or null for all. */
  environments: text('environments', { mode: 'json' }).$type<string[]>(),
  /** The signing secret (`whsec_...`): shown once, kept to sign each delivery. */
  secret: text('secret').notNull(),
  /** `standard` (the §13 JSON body) or `slack` (a Slack-compatible message). */
  format: text('format', { enum: ['standard', 'slack'] })
    .notNull()
    .default('standard'),
  enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
  /** Why it was disabled (by an operator, or automatically after its failure budget). */
  disabledReason: text('disabled_reason'),
  /** Consecutive deliveries given up on (the failure budget). */
  failures: integer('failures').notNull().default(0),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** The outbox: one row per event, written in the transaction of the change it describes. */
export const webhookEvents = sqliteTable(
  'webhook_events',
  {
    /** The `webhook-id` every delivery and retry of this event carries. */
    id: text('id').primaryKey(),
    type: text('type').notNull(),
    environment: text('environment'),
    flag: text('flag'),
    /** The whole `{ type, timestamp, data }` body as sent (JSON). */
    payload: text('payload', { mode: 'json' }).$type<JsonValue>().notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('webhook_events_created_idx').on(t.createdAt)],
);

/** One event to one webhook: its attempts, the next one, and how the last went (the delivery log). */
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    id: text('id').primaryKey(),
    webhookId: text('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    eventId: text('event_id')
      .notNull()
      .references(() => webhookEvents.id, { onDelete: 'cascade' }),
    status: text('status', { enum: ['pending', 'delivered', 'failed'] }).notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    lastLatencyMs: integer('last_latency_ms'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    deliveredAt: integer('delivered_at'),
  },
  (t) => [index('webhook_deliveries_due_idx').on(t.status, t.nextAttemptAt), index('webhook_deliveries_webhook_idx').on(t.webhookId, t.createdAt)],
);

/** Triggers (CONTRACT §13): a URL with a secret that kills or revives one flag in one environment. */
export const triggers = sqliteTable(
  'triggers',
  {
    id: text('id').primaryKey(),
    environment: text('environment')
      .notNull()
      .references(() => environments.key, { onDelete: 'cascade' }),
    flag: text('flag')
      .notNull()
      .references(() => flags.key, { onDelete: 'cascade' }),
    action: text('action', { enum: ['kill', 'revive'] }).notNull(),
    name: text('name').notNull(),
    /** SHA-256 of the secret in the URL (the secret itself is shown once). */
    hash: text('hash').notNull(),
    createdAt: integer('created_at').notNull(),
    authorName: text('author_name').notNull(),
    lastFiredAt: integer('last_fired_at'),
    fired: integer('fired').notNull().default(0),
  },
  (t) => [index('triggers_hash_idx').on(t.hash), index('triggers_flag_idx').on(t.environment, t.flag)],
);

/** Console sessions of people signed in with OpenID Connect (CONTRACT §14). `id` is the SHA-256 of the cookie secret. */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    subject: text('subject').notNull(),
    email: text('email'),
    name: text('name'),
    role: text('role').notNull(),
    /** JSON list of environments the role may change; null: all. */
    environments: text('environments'),
    /** SHA-256 of the session's CSRF token. */
    csrf: text('csrf').notNull(),
    createdAt: integer('created_at').notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    revokedAt: integer('revoked_at'),
  },
  (t) => [index('sessions_expires_idx').on(t.expiresAt)],
);

/** OpenID Connect sign-ins in progress: the authorization request's state, nonce and PKCE verifier, until the callback. */
export const oidcLogins = sqliteTable('oidc_logins', {
  state: text('state').primaryKey(),
  nonce: text('nonce').notNull(),
  codeVerifier: text('code_verifier').notNull(),
  returnTo: text('return_to'),
  createdAt: integer('created_at').notNull(),
});

/** Metric batches forwarded by relays (CONTRACT §10), already counted: the key makes forwarding exactly-once. */
export const relayBatches = sqliteTable(
  'relay_batches',
  {
    tokenId: text('token_id').notNull(),
    batchKey: text('batch_key').notNull(),
    receivedAt: integer('received_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tokenId, t.batchKey] }), index('relay_batches_received_idx').on(t.receivedAt)],
);

/**
 * Flag lifecycle (CONTRACT §15): per flag, environment and served variant ('' for the caller's default), when SDKs
 * first and last reported evaluating it, kept at metrics ingest. Not pruned by metrics retention.
 */
export const flagUsage = sqliteTable(
  'flag_usage',
  {
    environment: text('environment').notNull(),
    flag: text('flag').notNull(),
    variant: text('variant').notNull(),
    firstEvaluatedAt: integer('first_evaluated_at').notNull(),
    lastEvaluatedAt: integer('last_evaluated_at').notNull(),
    evaluations: integer('evaluations').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.environment, t.flag, t.variant] })],
);
