-- Creates the PostgreSQL role and database of the mail service (production or a shared dev box).
-- Run it as a superuser, giving the role's password in a psql variable (it is never stored here):
--
--     sudo -u postgres psql -v mail_password="'a long random password'" -f scripts/db.sql
--
-- (the quotes inside are optional; -v mail_password=secret works too). Optional variables
-- mail_role and mail_db rename the role and the database (default: mail and mail).
--
-- This makes only an empty database owned by the role. The schema comes from the migrations, run
-- as that role, which therefore owns the tables it creates:
--
--     DATABASE_URL=postgresql://mail:...@127.0.0.1/mail flask --app app db upgrade
--
-- Then give the API and the worker the same DATABASE_URL. Running this file again is safe: it
-- resets the role's password and attributes and leaves an existing database (and its data) alone.

\set ON_ERROR_STOP on
\set QUIET on

\if :{?mail_role}
\else
    \set mail_role mail
\endif
\if :{?mail_db}
\else
    \set mail_db mail
\endif

\if :{?mail_password}
\else
    \echo 'scripts/db.sql: no password given for the role. Run it as:'
    \echo '    sudo -u postgres psql -v mail_password="''a long random password''" -f scripts/db.sql'
    DO $$ BEGIN RAISE EXCEPTION 'mail_password is not set (psql -v mail_password=...)'; END $$;
\endif

-- The password without the surrounding single quotes of -v mail_password="'...'" (and with its
-- doubled quotes undone), so that the value reaches SQL only as a properly quoted literal.
SELECT CASE
           WHEN length(:'mail_password') >= 2
                AND left(:'mail_password', 1) = '''' AND right(:'mail_password', 1) = ''''
           THEN replace(substr(:'mail_password', 2, length(:'mail_password') - 2), '''''', '''')
           ELSE :'mail_password'
       END AS mail_password_value \gset
SELECT :'mail_password_value' = '' AS mail_password_empty \gset
\if :mail_password_empty
    DO $$ BEGIN RAISE EXCEPTION 'mail_password is empty: give the role a real password'; END $$;
\endif

-- The role: may log in, nothing more. It owns the database and (through the migrations) the
-- tables, so it needs no other privilege.
SELECT format('CREATE ROLE %I', :'mail_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'mail_role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L', :'mail_role', :'mail_password_value') \gexec
\unset mail_password
\unset mail_password_value

-- The database, owned by the role, in UTF-8 whatever the cluster's default (mail is Unicode).
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0',
              :'mail_db', :'mail_role', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mail_db') \gexec
ALTER DATABASE :"mail_db" OWNER TO :"mail_role";

-- Only the owner (and superusers) may connect or create temporary tables: other roles on the
-- same server cannot read the mail.
REVOKE CONNECT, TEMPORARY ON DATABASE :"mail_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"mail_db" TO :"mail_role";

SELECT format('DATABASE_URL=postgresql://%s:...@127.0.0.1/%s flask --app app db upgrade',
              :'mail_role', :'mail_db') AS mail_next_step \gset
\echo 'scripts/db.sql: role and database are ready; create the schema with the migrations:'
\echo '   ' :mail_next_step
