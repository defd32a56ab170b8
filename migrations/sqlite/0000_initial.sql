CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor_token_id` text,
	`actor_name` text NOT NULL,
	`action` text NOT NULL,
	`resource_type` text NOT NULL,
	`resource_key` text NOT NULL,
	`environment` text,
	`before` text,
	`after` text,
	`reason` text
);
--> statement-breakpoint
CREATE INDEX `audit_at_idx` ON `audit_log` (`at`);--> statement-breakpoint
CREATE INDEX `audit_resource_idx` ON `audit_log` (`resource_type`,`resource_key`);--> statement-breakpoint
CREATE INDEX `audit_env_idx` ON `audit_log` (`environment`);--> statement-breakpoint
CREATE TABLE `canaries` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`document` text NOT NULL,
	`state` text NOT NULL,
	`stage_index` integer DEFAULT 0 NOT NULL,
	`stage_started_at` integer NOT NULL,
	`paused_at` integer,
	`last_decision` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`environment`, `flag`),
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`flag`) REFERENCES `flags`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `change_log` (
	`environment` text NOT NULL,
	`version` integer NOT NULL,
	`changes` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`environment`, `version`),
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `environments` (
	`key` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`version` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `flag_states` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`state` text NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`killed_at` integer,
	`kill_reason` text,
	`panic_saved_state` text,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`environment`, `flag`),
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`flag`) REFERENCES `flags`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `flag_states_flag_idx` ON `flag_states` (`flag`);--> statement-breakpoint
CREATE TABLE `flags` (
	`key` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`variants` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`tags` text DEFAULT '[]' NOT NULL,
	`archived` integer DEFAULT false NOT NULL,
	`revision` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `flags_archived_idx` ON `flags` (`archived`);--> statement-breakpoint
CREATE TABLE `metrics_minute` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`variant` text NOT NULL,
	`minute` integer NOT NULL,
	`evaluations` integer DEFAULT 0 NOT NULL,
	`reasons` text DEFAULT '{}' NOT NULL,
	`outcomes` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`latency` text,
	`value_sum` real DEFAULT 0 NOT NULL,
	`value_count` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`environment`, `flag`, `variant`, `minute`)
);
--> statement-breakpoint
CREATE TABLE `sdk_reports` (
	`sdk_id` text NOT NULL,
	`seq` integer NOT NULL,
	`received_at` integer NOT NULL,
	PRIMARY KEY(`sdk_id`, `seq`)
);
--> statement-breakpoint
CREATE INDEX `sdk_reports_received_idx` ON `sdk_reports` (`received_at`);--> statement-breakpoint
CREATE TABLE `segments` (
	`key` text PRIMARY KEY NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`included` text NOT NULL,
	`excluded` text NOT NULL,
	`rules` text NOT NULL,
	`revision` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`environment` text,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`prefix` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer,
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `tokens_hash_idx` ON `tokens` (`hash`);