CREATE TABLE `change_requests` (
	`id` text PRIMARY KEY NOT NULL,
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`base_version` integer NOT NULL,
	`state` text NOT NULL,
	`reason` text,
	`status` text NOT NULL,
	`author_token_id` text,
	`author_name` text NOT NULL,
	`reviewer_token_id` text,
	`reviewer_name` text,
	`review_reason` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`flag`) REFERENCES `flags`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `change_requests_env_status_idx` ON `change_requests` (`environment`,`status`);--> statement-breakpoint
CREATE TABLE `flag_state_history` (
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`version` integer NOT NULL,
	`state` text NOT NULL,
	`at` integer NOT NULL,
	`actor_token_id` text,
	`actor_name` text NOT NULL,
	`action` text NOT NULL,
	`reason` text,
	PRIMARY KEY(`environment`, `flag`, `version`),
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`flag`) REFERENCES `flags`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `flag_state_history_at_idx` ON `flag_state_history` (`environment`,`flag`,`at`);--> statement-breakpoint
CREATE TABLE `schedules` (
	`id` text PRIMARY KEY NOT NULL,
	`environment` text NOT NULL,
	`flag` text NOT NULL,
	`at` integer NOT NULL,
	`action` text NOT NULL,
	`state` text,
	`reason` text,
	`status` text NOT NULL,
	`error` text,
	`author_token_id` text,
	`author_name` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`ran_at` integer,
	FOREIGN KEY (`environment`) REFERENCES `environments`(`key`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`flag`) REFERENCES `flags`(`key`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `schedules_due_idx` ON `schedules` (`status`,`at`);--> statement-breakpoint
CREATE INDEX `schedules_flag_idx` ON `schedules` (`environment`,`flag`);--> statement-breakpoint
ALTER TABLE `environments` ADD `require_approval` integer DEFAULT false NOT NULL;--> statement-breakpoint
-- History starts with the state each flag has now (earlier versions were not kept before this migration).
INSERT INTO flag_state_history (environment, flag, version, state, at, actor_token_id, actor_name, action, reason) SELECT environment, flag, version, state, updated_at, NULL, 'system', 'flag-state.history-start', NULL FROM flag_states;
