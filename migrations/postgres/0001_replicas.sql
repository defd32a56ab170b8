CREATE TABLE "leases" (
	"duty" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "replica_sdks" (
	"replica" text NOT NULL,
	"environment" text NOT NULL,
	"sdks" text NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "replica_sdks_replica_environment_pk" PRIMARY KEY("replica","environment")
);
