-- Servers ("guilds"), their members, channels, roles and permissions, invites, bans,
-- the audit log; and conversations, which are channels without a server.

CREATE TABLE servers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    -- An owner must hand the server over (or delete it) before the account can go.
    owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    description text,
    icon_url    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT servers_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT servers_description_length CHECK (description IS NULL OR char_length(description) <= 1024),
    CONSTRAINT servers_icon_url_length CHECK (icon_url IS NULL OR char_length(icon_url) <= 2048)
);
CREATE INDEX servers_owner_idx ON servers (owner_id);

CREATE TABLE server_members (
    server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    nickname  text,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id),
    CONSTRAINT server_members_nickname_length
        CHECK (nickname IS NULL OR char_length(nickname) BETWEEN 1 AND 32)
);
CREATE INDEX server_members_user_idx ON server_members (user_id);

-- One table for every place messages go. Server channels have a server_id; direct
-- and group conversations have none and list their people in conversation_participants.
-- last_seq is the per-channel message counter: the inserting transaction increments it,
-- so message sequence numbers are gap-free and follow commit order.
CREATE TABLE channels (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server_id           uuid REFERENCES servers (id) ON DELETE CASCADE,
    kind                text NOT NULL,
    name                text,
    topic               text,
    position            integer NOT NULL DEFAULT 0,
    parent_id           uuid REFERENCES channels (id) ON DELETE SET NULL,
    owner_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    dm_user_low         uuid REFERENCES users (id) ON DELETE CASCADE,
    dm_user_high        uuid REFERENCES users (id) ON DELETE CASCADE,
    user_limit          integer,
    rate_limit_per_user integer NOT NULL DEFAULT 0,
    last_seq            bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channels_kind_known CHECK (kind IN ('text', 'voice', 'category', 'direct', 'group')),
    CONSTRAINT channels_server_iff_not_conversation
        CHECK ((server_id IS NULL) = (kind IN ('direct', 'group'))),
    CONSTRAINT channels_name_required CHECK (kind IN ('direct', 'group') OR name IS NOT NULL),
    CONSTRAINT channels_name_length CHECK (name IS NULL OR char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT channels_topic_length CHECK (topic IS NULL OR char_length(topic) <= 1024),
    CONSTRAINT channels_direct_pair CHECK (
        (kind = 'direct') = (dm_user_low IS NOT NULL AND dm_user_high IS NOT NULL)
        AND (dm_user_low IS NULL OR dm_user_low < dm_user_high)
    ),
    CONSTRAINT channels_parent_not_self CHECK (parent_id <> id),
    CONSTRAINT channels_user_limit_range CHECK (user_limit IS NULL OR user_limit BETWEEN 0 AND 99),
    CONSTRAINT channels_slowmode_range CHECK (rate_limit_per_user BETWEEN 0 AND 21600),
    CONSTRAINT channels_last_seq_non_negative CHECK (last_seq >= 0)
);
CREATE INDEX channels_server_position_idx ON channels (server_id, position) WHERE server_id IS NOT NULL;
CREATE INDEX channels_parent_idx ON channels (parent_id) WHERE parent_id IS NOT NULL;
-- One direct conversation per pair of users.
CREATE UNIQUE INDEX channels_direct_pair_key ON channels (dm_user_low, dm_user_high) WHERE kind = 'direct';

CREATE TABLE conversation_participants (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX conversation_participants_user_idx ON conversation_participants (user_id);

-- Permissions are Permission bit flags (see src/xfchat/domain/permissions.py).
-- The role with is_default is "@everyone": every member has it implicitly.
CREATE TABLE roles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name        text NOT NULL,
    permissions bigint NOT NULL DEFAULT 0,
    position    integer NOT NULL DEFAULT 0,
    color       integer NOT NULL DEFAULT 0,
    hoist       boolean NOT NULL DEFAULT false,
    mentionable boolean NOT NULL DEFAULT false,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT roles_position_non_negative CHECK (position >= 0),
    CONSTRAINT roles_color_rgb CHECK (color BETWEEN 0 AND 16777215),
    CONSTRAINT roles_id_server_key UNIQUE (id, server_id)
);
CREATE INDEX roles_server_position_idx ON roles (server_id, position);
CREATE UNIQUE INDEX roles_one_default_per_server ON roles (server_id) WHERE is_default;

-- The composite keys make it impossible to give a member a role of another server.
CREATE TABLE member_roles (
    server_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    role_id     uuid NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id, role_id),
    FOREIGN KEY (server_id, user_id) REFERENCES server_members (server_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (role_id, server_id) REFERENCES roles (id, server_id) ON DELETE CASCADE
);
CREATE INDEX member_roles_role_idx ON member_roles (role_id);

-- Per-channel allow/deny for one role or one member.
CREATE TABLE channel_permission_overrides (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    role_id    uuid REFERENCES roles (id) ON DELETE CASCADE,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    allow      bigint NOT NULL DEFAULT 0,
    deny       bigint NOT NULL DEFAULT 0,
    CONSTRAINT overrides_role_xor_user CHECK ((role_id IS NULL) <> (user_id IS NULL)),
    CONSTRAINT overrides_allow_deny_disjoint CHECK (allow & deny = 0),
    CONSTRAINT overrides_one_per_target UNIQUE NULLS NOT DISTINCT (channel_id, role_id, user_id)
);
CREATE INDEX overrides_role_idx ON channel_permission_overrides (role_id) WHERE role_id IS NOT NULL;
CREATE INDEX overrides_user_idx ON channel_permission_overrides (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE invites (
    code       text PRIMARY KEY,
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    channel_id uuid REFERENCES channels (id) ON DELETE CASCADE,
    inviter_id uuid REFERENCES users (id) ON DELETE SET NULL,
    max_uses   integer,
    uses       integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invites_code_format CHECK (code ~ '^[A-Za-z0-9]{6,32}$'),
    CONSTRAINT invites_max_uses_positive CHECK (max_uses IS NULL OR max_uses > 0),
    CONSTRAINT invites_uses_within_max CHECK (uses >= 0 AND (max_uses IS NULL OR uses <= max_uses))
);
CREATE INDEX invites_server_idx ON invites (server_id);

CREATE TABLE bans (
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id),
    CONSTRAINT bans_reason_length CHECK (reason IS NULL OR char_length(reason) <= 512)
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    action      text NOT NULL,
    target_type text,
    target_id   uuid,
    changes     jsonb NOT NULL DEFAULT '{}'::jsonb,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    CONSTRAINT audit_log_reason_length CHECK (reason IS NULL OR char_length(reason) <= 512)
);
CREATE INDEX audit_log_server_idx ON audit_log (server_id, id DESC);
