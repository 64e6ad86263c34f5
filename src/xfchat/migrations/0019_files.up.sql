-- One storage for every uploaded file: attachments, their thumbnails, avatars and
-- server icons. A file's bytes are rows of at most 256 KiB (file_chunks), so a file is
-- written and read a chunk at a time, never whole in memory, and a range is read from
-- the chunks it covers. EXTERNAL storage: out of line and uncompressed (most uploads are
-- compressed already), which lets substring() fetch only the TOAST pieces it needs.
CREATE TABLE files (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Whose storage quota the file counts in (NULL: nobody's, e.g. a thumbnail).
    owner_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    size_bytes bigint NOT NULL,
    sha256     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_size_non_negative CHECK (size_bytes >= 0),
    CONSTRAINT files_sha256_length CHECK (octet_length(sha256) = 32)
);
CREATE INDEX files_owner_idx ON files (owner_id) INCLUDE (size_bytes) WHERE owner_id IS NOT NULL;

CREATE TABLE file_chunks (
    file_id uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    n       integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (file_id, n),
    CONSTRAINT file_chunks_n_non_negative CHECK (n >= 0),
    CONSTRAINT file_chunks_size CHECK (octet_length(data) BETWEEN 1 AND 262144)
);
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Attachments (the table of 0003 was never written to): a message's files, in order.
-- The file's bytes go with the row: deleting an attachment (its message deleted, or
-- the channel, server or conversation with it) deletes its file and thumbnail in the
-- same statement (the trigger below), so nothing stored outlives what shows it.
DROP TABLE attachments;
CREATE TABLE attachments (
    id               uuid PRIMARY KEY,
    message_id       uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel_id       uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    position         smallint NOT NULL,
    file_id          uuid NOT NULL REFERENCES files (id),
    thumbnail_id     uuid REFERENCES files (id),
    filename         text NOT NULL,
    content_type     text NOT NULL,
    size_bytes       bigint NOT NULL,
    width            integer,
    height           integer,
    thumbnail_type   text,
    thumbnail_width  integer,
    thumbnail_height integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT attachments_message_position_key UNIQUE (message_id, position),
    CONSTRAINT attachments_position_range CHECK (position BETWEEN 0 AND 9),
    CONSTRAINT attachments_filename_length CHECK (char_length(filename) BETWEEN 1 AND 255),
    CONSTRAINT attachments_content_type_length CHECK (char_length(content_type) BETWEEN 1 AND 127),
    CONSTRAINT attachments_size_non_negative CHECK (size_bytes >= 0),
    CONSTRAINT attachments_dimensions_positive
        CHECK ((width IS NULL OR width > 0) AND (height IS NULL OR height > 0)),
    CONSTRAINT attachments_thumbnail_whole CHECK (
        (thumbnail_id IS NULL) = (thumbnail_type IS NULL)
        AND (thumbnail_id IS NULL) = (thumbnail_width IS NULL)
        AND (thumbnail_id IS NULL) = (thumbnail_height IS NULL)),
    CONSTRAINT attachments_thumbnail_type_safe
        CHECK (thumbnail_type IS NULL OR thumbnail_type IN ('image/png', 'image/jpeg'))
);
CREATE INDEX attachments_file_idx ON attachments (file_id);
CREATE INDEX attachments_thumbnail_idx ON attachments (thumbnail_id) WHERE thumbnail_id IS NOT NULL;
CREATE INDEX attachments_channel_idx ON attachments (channel_id);

-- Avatars and icons move their bytes into files (same id), and drop their own copy.
INSERT INTO files (id, owner_id, size_bytes, sha256, created_at)
    SELECT id, owner_id, size_bytes, sha256, created_at FROM media;
INSERT INTO file_chunks (file_id, n, data)
    SELECT m.id, g.n, substring(m.data FROM (g.n * 262144 + 1)::int FOR 262144)
    FROM media m, generate_series(0, ((m.size_bytes - 1) / 262144)::int) AS g (n)
    WHERE m.size_bytes > 0;
ALTER TABLE media ADD COLUMN file_id uuid REFERENCES files (id);
UPDATE media SET file_id = id;
ALTER TABLE media ALTER COLUMN file_id SET NOT NULL;
ALTER TABLE media DROP CONSTRAINT media_size_matches;
ALTER TABLE media DROP COLUMN data;
CREATE INDEX media_file_idx ON media (file_id);

CREATE FUNCTION drop_files_of_attachments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM files f USING gone g WHERE f.id IN (g.file_id, g.thumbnail_id);
    RETURN NULL;
END $$;
CREATE TRIGGER attachments_drop_files AFTER DELETE ON attachments
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION drop_files_of_attachments();

CREATE FUNCTION drop_files_of_media() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM files f USING gone g WHERE f.id = g.file_id;
    RETURN NULL;
END $$;
CREATE TRIGGER media_drop_files AFTER DELETE ON media
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION drop_files_of_media();
