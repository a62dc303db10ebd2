-- Roles (named permission sets) and ring groups; permissions move from each user to their role.
-- Scopes are text in controller/api/scopes.py's grammar: all | none | comma list of ring_group,
-- agent, ring_group:<id>, agent:<ext>. Defaults are the contact-centre suites': every role may
-- listen to all recordings, no role may download until an administrator grants it.

CREATE TABLE roles (
    name            text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    description     text NOT NULL DEFAULT '',
    builtin         boolean NOT NULL DEFAULT false,
    view_scope      text NOT NULL DEFAULT 'none',   -- seen besides what may be listened to / downloaded
    listen_scope    text NOT NULL DEFAULT 'all',
    download_scope  text NOT NULL DEFAULT 'none',
    pause_scope     text NOT NULL DEFAULT 'none',   -- `agent` = own calls where agent pause is allowed
    rights          text[] NOT NULL DEFAULT '{}'
        CHECK (rights <@ ARRAY['view_settings', 'settings', 'users', 'roles', 'audit']::text[]),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

INSERT INTO roles (name, description, builtin, view_scope, listen_scope, download_scope, pause_scope, rights) VALUES
    ('admin', 'Administers settings, users, roles and the audit log; sees every call', true,
     'all', 'all', 'none', 'all', ARRAY['view_settings', 'settings', 'users', 'roles', 'audit']),
    ('supervisor', 'Listens to calls and pauses live recordings; reads settings', true,
     'none', 'all', 'none', 'all', ARRAY['view_settings']),
    ('agent', 'Handles calls; pauses their own call where the account allows agent pause', true,
     'agent', 'all', 'none', 'agent', '{}');

-- Every existing user keeps exactly the rights they had. Until now a user carried role + listen and
-- download scopes, with these rules: an admin sees every call; an agent sees only their own calls and
-- their non-empty scopes shrink to their own calls; a supervisor sees what they may listen to or
-- download; admins and supervisors pause any call they see, agents only their own where the policy
-- allows. Each distinct (role, listen, download) becomes that built-in role when it matches the
-- built-in's defaults, otherwise a generated role named after what it grants.
CREATE TEMPORARY TABLE legacy_roles ON COMMIT DROP AS
WITH legacy AS (
    SELECT DISTINCT u.role AS old_role,
           CASE WHEN u.role <> 'agent' THEN COALESCE(NULLIF(btrim(u.listen_scope), ''), 'none')
                WHEN btrim(u.listen_scope) IN ('none', '') THEN 'none' ELSE 'agent' END AS listen,
           CASE WHEN u.role <> 'agent' THEN COALESCE(NULLIF(btrim(u.download_scope), ''), 'none')
                WHEN btrim(u.download_scope) IN ('none', '') THEN 'none' ELSE 'agent' END AS download
    FROM users u
), spec AS (
    SELECT l.*,
           CASE l.old_role WHEN 'admin' THEN 'all' WHEN 'agent' THEN 'agent' ELSE 'none' END AS view,
           CASE l.old_role WHEN 'agent' THEN 'agent' ELSE 'all' END AS pause,
           CASE l.old_role WHEN 'admin' THEN ARRAY['view_settings', 'settings', 'users', 'roles', 'audit']
                           WHEN 'supervisor' THEN ARRAY['view_settings'] ELSE '{}'::text[] END AS rights,
           left(l.old_role || '-listen-' || regexp_replace(l.listen, '[^A-Za-z0-9]+', '_', 'g')
                || '-download-' || regexp_replace(l.download, '[^A-Za-z0-9]+', '_', 'g'), 90) AS base_name
    FROM legacy l
)
SELECT s.*,
       COALESCE(b.name,
                s.base_name || CASE WHEN count(*) OVER (PARTITION BY s.base_name) > 1
                                    THEN '-' || row_number() OVER (PARTITION BY s.base_name ORDER BY s.listen, s.download)
                                    ELSE '' END) AS new_role
FROM spec s
LEFT JOIN roles b ON b.builtin AND b.name = s.old_role AND b.view_scope = s.view AND b.listen_scope = s.listen
    AND b.download_scope = s.download AND b.pause_scope = s.pause AND b.rights = s.rights;

INSERT INTO roles (name, description, view_scope, listen_scope, download_scope, pause_scope, rights)
SELECT new_role,
       'Created by the upgrade to roles for ' || old_role || 's who had listen=' || listen || ', download=' || download,
       view, listen, download, pause, rights
FROM legacy_roles WHERE new_role NOT IN (SELECT name FROM roles);

ALTER TABLE users DROP CONSTRAINT users_role_check;
UPDATE users u SET role = l.new_role
FROM legacy_roles l
WHERE l.old_role = u.role
  AND l.listen = CASE WHEN u.role <> 'agent' THEN COALESCE(NULLIF(btrim(u.listen_scope), ''), 'none')
                      WHEN btrim(u.listen_scope) IN ('none', '') THEN 'none' ELSE 'agent' END
  AND l.download = CASE WHEN u.role <> 'agent' THEN COALESCE(NULLIF(btrim(u.download_scope), ''), 'none')
                        WHEN btrim(u.download_scope) IN ('none', '') THEN 'none' ELSE 'agent' END;
ALTER TABLE users DROP COLUMN listen_scope, DROP COLUMN download_scope;
ALTER TABLE users ADD CONSTRAINT users_role_fkey FOREIGN KEY (role) REFERENCES roles (name) ON UPDATE CASCADE;
CREATE INDEX users_role_idx ON users (role);

-- Ring groups: `id` is what the dialplan hook puts in `ring_group` (so recordings.ring_groups holds
-- it); members are users, whose `ring_group` scope covers the calls that came through their groups.
CREATE TABLE ring_groups (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.+@-]{0,99}$'),
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ring_group_members (
    ring_group_id   text NOT NULL REFERENCES ring_groups (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (ring_group_id, user_id)
);
CREATE INDEX ring_group_members_user_idx ON ring_group_members (user_id);
