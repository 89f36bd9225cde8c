-- Templates: a tenant's name (unique among the tenant's live ones: deleted_at IS NULL) and its
-- versions, numbered from 1, never changed once stored. Every statement acts on the templates
-- of one %(tenant)s.

-- name: create
-- A new template %(name)s with its version 1 (%(subject)s, %(text)s, %(html)s,
-- %(description)s, made by %(created_by)s); no row if a live template has the name already.
WITH made AS (
    INSERT INTO template (tenant, name) VALUES (%(tenant)s, %(name)s)
    ON CONFLICT (tenant, name) WHERE deleted_at IS NULL DO NOTHING
    RETURNING id, name, created_at
), version AS (
    INSERT INTO template_version (template_id, version, subject, text, html, description,
                                  created_by)
    SELECT id, 1, %(subject)s, %(text)s, %(html)s, %(description)s, %(created_by)s FROM made
    RETURNING version, subject, text, html, description, created_at, created_by
)
SELECT made.name, version.*, ARRAY[1] AS versions FROM made, version;

-- name: add_version
-- The next version of the live template %(name)s (fields as create's); no row if there is no
-- such template, or if %(id)s is not NULL and the live template of that name has another id
-- (a template deleted since, whose name a new one took). The first statement locks the
-- template, so that two versions added at once are numbered one after the other: the second
-- reads the number after the first committed.
SELECT id FROM template
 WHERE tenant = %(tenant)s AND name = %(name)s AND deleted_at IS NULL
   AND (%(id)s::bigint IS NULL OR id = %(id)s)
   FOR UPDATE;
WITH target AS (
    SELECT id, name FROM template
     WHERE tenant = %(tenant)s AND name = %(name)s AND deleted_at IS NULL
       AND (%(id)s::bigint IS NULL OR id = %(id)s)
), version AS (
    INSERT INTO template_version (template_id, version, subject, text, html, description,
                                  created_by)
    SELECT id, (SELECT max(version) FROM template_version WHERE template_id = target.id) + 1,
           %(subject)s, %(text)s, %(html)s, %(description)s, %(created_by)s
      FROM target
    RETURNING template_id, version, subject, text, html, description, created_at, created_by
)
SELECT target.name, version.version, version.subject, version.text, version.html,
       version.description, version.created_at, version.created_by,
       (SELECT array_agg(v ORDER BY v)
          FROM (SELECT version FROM template_version WHERE template_id = target.id
                UNION SELECT version.version) AS known(v)) AS versions
  FROM target JOIN version ON version.template_id = target.id;

-- name: version
-- The live template %(name)s's version %(version)s (NULL: its latest), with the numbers of all
-- its versions; no row if there is no such template or version.
SELECT template.name, shown.version, shown.subject, shown.text, shown.html, shown.description,
       shown.created_at, shown.created_by,
       (SELECT array_agg(version ORDER BY version) FROM template_version
         WHERE template_id = template.id) AS versions
  FROM template
  JOIN LATERAL (
       SELECT * FROM template_version
        WHERE template_id = template.id
          AND (%(version)s::int IS NULL OR version = %(version)s)
        ORDER BY version DESC LIMIT 1) AS shown ON true
 WHERE template.tenant = %(tenant)s AND template.name = %(name)s
   AND template.deleted_at IS NULL;

-- name: page
-- A page of the live templates, newest first, keyset-paged by (created_at, name): the first
-- %(limit)s after the position (%(after_created)s, %(after_name)s) of the previous page's last
-- one; whose name contains %(search)s, unless it is NULL. Each with its latest version.
SELECT template.name, latest.version, latest.description, template.created_at,
       latest.created_at AS updated_at
  FROM template
  JOIN LATERAL (
       SELECT version, description, created_at FROM template_version
        WHERE template_id = template.id ORDER BY version DESC LIMIT 1) AS latest ON true
 WHERE template.tenant = %(tenant)s AND template.deleted_at IS NULL
   AND (%(search)s::text IS NULL OR strpos(lower(template.name), lower(%(search)s)) > 0)
   AND (%(after_created)s::timestamptz IS NULL
        OR template.created_at < %(after_created)s
        OR (template.created_at = %(after_created)s AND template.name > %(after_name)s))
 ORDER BY template.created_at DESC, template.name
 LIMIT %(limit)s;

-- name: delete
-- Delete the live template %(name)s: no new mail can use it; its rows stay for the mail
-- rendered from it. No row if there was none.
UPDATE template SET deleted_at = now()
 WHERE tenant = %(tenant)s AND name = %(name)s AND deleted_at IS NULL
RETURNING id;

-- name: resolve
-- The versions that mail asks for (%(wanted)s: a JSON array of {name, version}, version null
-- for the latest), each with the live template's id, the version's number and its fields; a
-- pair without a live template or such a version has no row.
SELECT wanted.name, wanted.version AS asked, template.id, shown.version, shown.subject,
       shown.text, shown.html
  FROM json_to_recordset(%(wanted)s) AS wanted(name text, version int)
  JOIN template ON template.tenant = %(tenant)s AND template.name = wanted.name
                AND template.deleted_at IS NULL
  JOIN LATERAL (
       SELECT version, subject, text, html FROM template_version
        WHERE template_id = template.id
          AND (wanted.version IS NULL OR version = wanted.version)
        ORDER BY version DESC LIMIT 1) AS shown ON true;

-- name: admin_page
-- The admin's list: a page of every template, the deleted ones too, newest first, keyset-paged
-- by id: the first %(limit)s whose id is below %(before)s (NULL: from the newest), whose name
-- contains %(search)s in any case (NULL: every name). Each with its latest version.
SELECT template.id, template.tenant, template.name, template.created_at, template.deleted_at,
       latest.version,
       latest.description, latest.created_at AS updated_at
  FROM template
  JOIN LATERAL (
       SELECT version, description, created_at FROM template_version
        WHERE template_id = template.id ORDER BY version DESC LIMIT 1) AS latest ON true
 WHERE (%(search)s::text IS NULL OR strpos(lower(template.name), lower(%(search)s)) > 0)
   AND (%(before)s::bigint IS NULL OR template.id < %(before)s)
 ORDER BY template.id DESC
 LIMIT %(limit)s;

-- name: template_by_id
-- The template %(id)s, deleted or not, with how many versions it has; no row if there is none.
SELECT id, tenant, name, created_at, deleted_at,
       (SELECT count(*) FROM template_version WHERE template_id = template.id) AS version_count
  FROM template
 WHERE id = %(id)s;

-- name: versions_by_id
-- The template %(id)s's latest %(limit)s versions, newest first, every field.
SELECT version, subject, text, html, description, created_by, created_at
  FROM template_version
 WHERE template_id = %(id)s
 ORDER BY version DESC
 LIMIT %(limit)s;

-- name: source_by_id
-- The template %(id)s's version %(version)s (NULL: its latest), deleted or not, as resolve
-- gives it: the template's id, the version's number and its fields. No row if there is none.
SELECT template_id, version, subject, text, html
  FROM template_version
 WHERE template_id = %(id)s AND (%(version)s::int IS NULL OR version = %(version)s)
 ORDER BY version DESC
 LIMIT 1;
