CREATE TABLE `flag_usage` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`variant` text NOT NULL,
	`first_evaluated_at` integer NOT NULL,
	`last_evaluated_at` integer NOT NULL,
	`evaluations` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`environment`, `flag`, `variant`)
);
--> statement-breakpoint
CREATE TABLE `oidc_logins` (
	`state` text PRIMARY KEY NOT NULL,
	`nonce` text NOT NULL,
	`code_verifier` text NOT NULL,
	`return_to` text,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `relay_batches` (
	`token_id` text NOT NULL,
	`batch_key` text NOT NULL,
	`received_at` integer NOT NULL,
	PRIMARY KEY(`token_id`, `batch_key`)
);
--> statement-breakpoint
CREATE INDEX `relay_batches_received_idx` ON `relay_batches` (`received_at`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`subject` text NOT NULL,
	`email` text,
	`name` text,
	`role` text NOT NULL,
	`environments` text,
	`csrf` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE INDEX `sessions_expires_idx` ON `sessions` (`expires_at`);--> statement-breakpoint
ALTER TABLE `audit_log` ADD `actor_kind` text;--> statement-breakpoint
ALTER TABLE `audit_log` ADD `actor_subject` text;--> statement-breakpoint
ALTER TABLE `audit_log` ADD `actor_email` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `role` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `environments` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `tokens` ADD `replaced_by` text;