CREATE TABLE `leases` (
	`duty` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `replica_sdks` (
	`replica` text NOT NULL,
	`environment` text NOT NULL,
	`sdks` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`replica`, `environment`)
);
