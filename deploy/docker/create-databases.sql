-- One database per service, plus the API keys' `identity`. The postgres image runs this once,
-- when it initialises an empty data volume (mounted into /docker-entrypoint-initdb.d).
CREATE DATABASE request_api;
CREATE DATABASE validator;
CREATE DATABASE allocator;
CREATE DATABASE configurator;
CREATE DATABASE deployer;
CREATE DATABASE auditor;
CREATE DATABASE identity;
-- Each service runs as a login of its own that owns nothing and is no superuser; the owner
-- (postgres) creates its schema at start (SCHEMA_DATABASE_URL) and grants the login what
-- each table allows (the auditor's: only read and append).
CREATE ROLE request_api LOGIN PASSWORD 'request_api';
CREATE ROLE validator LOGIN PASSWORD 'validator';
CREATE ROLE allocator LOGIN PASSWORD 'allocator';
CREATE ROLE configurator LOGIN PASSWORD 'configurator';
CREATE ROLE deployer LOGIN PASSWORD 'deployer';
CREATE ROLE auditor LOGIN PASSWORD 'auditor';
-- Only the logins that use a database may connect to it: the deployer's tenant databases
-- live on this cluster too, and their logins must reach none of the platform's.
REVOKE CONNECT, TEMPORARY ON DATABASE request_api, validator, allocator, configurator,
    deployer, auditor, identity FROM PUBLIC;
GRANT CONNECT ON DATABASE request_api TO request_api;
GRANT CONNECT ON DATABASE validator TO validator;
GRANT CONNECT ON DATABASE allocator TO allocator;
GRANT CONNECT ON DATABASE configurator TO configurator;
GRANT CONNECT ON DATABASE deployer TO deployer;
GRANT CONNECT ON DATABASE auditor TO auditor;
GRANT CONNECT ON DATABASE identity TO request_api, allocator, deployer, auditor;
-- The API keys: the request-api issues, rotates and revokes them, the others check them.
-- Default privileges, as the secrets job creates the table later (as postgres).
\connect identity
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO request_api;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT SELECT ON TABLES TO allocator, deployer, auditor;
