CREATE TABLE "flag_usage" (
	"environment" text NOT NULL,
	"flag" text NOT NULL,
	"variant" text NOT NULL,
	"first_evaluated_at" bigint NOT NULL,
	"last_evaluated_at" bigint NOT NULL,
	"evaluations" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "flag_usage_environment_flag_variant_pk" PRIMARY KEY("environment","flag","variant")
);
--> statement-breakpoint
CREATE TABLE "oidc_logins" (
	"state" text PRIMARY KEY NOT NULL,
	"nonce" text NOT NULL,
	"code_verifier" text NOT NULL,
	"return_to" text,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "relay_batches" (
	"token_id" text NOT NULL,
	"batch_key" text NOT NULL,
	"received_at" bigint NOT NULL,
	CONSTRAINT "relay_batches_token_id_batch_key_pk" PRIMARY KEY("token_id","batch_key")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"email" text,
	"name" text,
	"role" text NOT NULL,
	"environments" text,
	"csrf" text NOT NULL,
	"created_at" bigint NOT NULL,
	"last_seen_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "actor_kind" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "actor_subject" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "actor_email" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "role" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "environments" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "expires_at" bigint;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "replaced_by" text;--> statement-breakpoint
CREATE INDEX "relay_batches_received_idx" ON "relay_batches" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "sessions_expires_idx" ON "sessions" USING btree ("expires_at");