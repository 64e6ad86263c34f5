-- Uploaded images: avatars now, server icons next. A row holds the server's own
-- re-encoding of an upload (PNG or JPEG, at most 512x512, no metadata), never the bytes
-- a client sent, so only these two safe types can ever be served.
CREATE TABLE media (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       bytea NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT media_purpose_known CHECK (purpose IN ('avatar', 'icon')),
    CONSTRAINT media_content_type_safe CHECK (content_type IN ('image/png', 'image/jpeg')),
    CONSTRAINT media_size_matches CHECK (size_bytes = octet_length(data)),
    CONSTRAINT media_sha256_length CHECK (octet_length(sha256) = 32),
    CONSTRAINT media_dimensions CHECK (width BETWEEN 1 AND 4096 AND height BETWEEN 1 AND 4096)
);
-- PNG and JPEG are already compressed: store them out of line without trying again.
ALTER TABLE media ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX media_owner_purpose_idx ON media (owner_id, purpose);
