CREATE TABLE "change_requests" (
	"id" text PRIMARY KEY NOT NULL,
	"environment" text NOT NULL,
	"flag" text NOT NULL,
	"base_version" bigint NOT NULL,
	"state" text NOT NULL,
	"reason" text,
	"status" text NOT NULL,
	"author_token_id" text,
	"author_name" text NOT NULL,
	"reviewer_token_id" text,
	"reviewer_name" text,
	"review_reason" text,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "flag_state_history" (
	"environment" text NOT NULL,
	"flag" text NOT NULL,
	"version" bigint NOT NULL,
	"state" text NOT NULL,
	"at" bigint NOT NULL,
	"actor_token_id" text,
	"actor_name" text NOT NULL,
	"action" text NOT NULL,
	"reason" text,
	CONSTRAINT "flag_state_history_environment_flag_version_pk" PRIMARY KEY("environment","flag","version")
);
--> statement-breakpoint
CREATE TABLE "schedules" (
	"id" text PRIMARY KEY NOT NULL,
	"environment" text NOT NULL,
	"flag" text NOT NULL,
	"at" bigint NOT NULL,
	"action" text NOT NULL,
	"state" text,
	"reason" text,
	"status" text NOT NULL,
	"error" text,
	"author_token_id" text,
	"author_name" text NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"ran_at" bigint
);
--> statement-breakpoint
ALTER TABLE "environments" ADD COLUMN "require_approval" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "change_requests" ADD CONSTRAINT "change_requests_environment_environments_key_fk" FOREIGN KEY ("environment") REFERENCES "public"."environments"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "change_requests" ADD CONSTRAINT "change_requests_flag_flags_key_fk" FOREIGN KEY ("flag") REFERENCES "public"."flags"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flag_state_history" ADD CONSTRAINT "flag_state_history_environment_environments_key_fk" FOREIGN KEY ("environment") REFERENCES "public"."environments"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flag_state_history" ADD CONSTRAINT "flag_state_history_flag_flags_key_fk" FOREIGN KEY ("flag") REFERENCES "public"."flags"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedules" ADD CONSTRAINT "schedules_environment_environments_key_fk" FOREIGN KEY ("environment") REFERENCES "public"."environments"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedules" ADD CONSTRAINT "schedules_flag_flags_key_fk" FOREIGN KEY ("flag") REFERENCES "public"."flags"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "change_requests_env_status_idx" ON "change_requests" USING btree ("environment","status");--> statement-breakpoint
CREATE INDEX "flag_state_history_at_idx" ON "flag_state_history" USING btree ("environment","flag","at");--> statement-breakpoint
CREATE INDEX "schedules_due_idx" ON "schedules" USING btree ("status","at");--> statement-breakpoint
CREATE INDEX "schedules_flag_idx" ON "schedules" USING btree ("environment","flag");--> statement-breakpoint
-- History starts with the state each flag has now (earlier versions were not kept before this migration).
INSERT INTO flag_state_history (environment, flag, version, state, at, actor_token_id, actor_name, action, reason) SELECT environment, flag, version, state, updated_at, NULL, 'system', 'flag-state.history-start', NULL FROM flag_states;
