-- One database per service, plus the API keys' `identity`. The postgres image runs this once,
-- when it initialises an empty data volume (mounted into /docker-entrypoint-initdb.d).
CREATE DATABASE request_api;
CREATE DATABASE validator;
CREATE DATABASE allocator;
CREATE DATABASE configurator;
CREATE DATABASE deployer;
CREATE DATABASE auditor;
CREATE DATABASE identity;
-- The auditor runs as a login of its own that may only read and append its history; the
-- owner (postgres) creates its schema (SCHEMA_DATABASE_URL).
CREATE ROLE auditor LOGIN PASSWORD 'auditor';
