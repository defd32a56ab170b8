-- Reviewed: sdk_reports gains token_id (exactly-once per SDK key); existing dedupe records are kept under token_id ''
-- (the key that sent them is unknown), which no new report matches, and expire after 24 hours as before.
CREATE TABLE `canary_evidence` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`window_started_at` integer NOT NULL,
	`variant` text NOT NULL,
	`pool` text NOT NULL,
	`evaluations` integer DEFAULT 0 NOT NULL,
	`outcomes` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`latency` text,
	`instances` integer DEFAULT 0 NOT NULL,
	`keys` text DEFAULT '[]' NOT NULL,
	`max_unit_outcomes` integer DEFAULT 0 NOT NULL,
	`max_unit_errors` integer DEFAULT 0 NOT NULL,
	`max_unit_latency` integer DEFAULT 0 NOT NULL,
	`capped_outcomes` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`environment`, `flag`, `window_started_at`, `variant`, `pool`)
);
--> statement-breakpoint
CREATE TABLE `canary_evidence_units` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`window_started_at` integer NOT NULL,
	`variant` text NOT NULL,
	`unit` text NOT NULL,
	`outcomes` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`latency_samples` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`environment`, `flag`, `window_started_at`, `variant`, `unit`)
);
--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_sdk_reports` (
	`token_id` text DEFAULT '' NOT NULL,
	`sdk_id` text NOT NULL,
	`seq` integer NOT NULL,
	`received_at` integer NOT NULL,
	PRIMARY KEY(`token_id`, `sdk_id`, `seq`)
);
--> statement-breakpoint
INSERT INTO `__new_sdk_reports`("token_id", "sdk_id", "seq", "received_at") SELECT '', "sdk_id", "seq", "received_at" FROM `sdk_reports`;--> statement-breakpoint
DROP TABLE `sdk_reports`;--> statement-breakpoint
ALTER TABLE `__new_sdk_reports` RENAME TO `sdk_reports`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `sdk_reports_received_idx` ON `sdk_reports` (`received_at`);--> statement-breakpoint
ALTER TABLE `tokens` ADD `client_side` integer DEFAULT false NOT NULL;