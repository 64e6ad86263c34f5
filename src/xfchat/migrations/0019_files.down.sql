-- xfchat: destroys every message attachment and its bytes (attachments, files, file_chunks); avatars and icons are kept
DROP TRIGGER media_drop_files ON media;
DROP FUNCTION drop_files_of_media();
DROP TRIGGER attachments_drop_files ON attachments;
DROP FUNCTION drop_files_of_attachments();
ALTER TABLE media ADD COLUMN data bytea;
UPDATE media m SET data = (SELECT string_agg(c.data, ''::bytea ORDER BY c.n)
                           FROM file_chunks c WHERE c.file_id = m.file_id);
UPDATE media SET data = ''::bytea WHERE data IS NULL;
ALTER TABLE media ALTER COLUMN data SET NOT NULL;
ALTER TABLE media ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE media ADD CONSTRAINT media_size_matches CHECK (size_bytes = octet_length(data));
DROP INDEX media_file_idx;
ALTER TABLE media DROP COLUMN file_id;
DROP TABLE attachments;
CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id   uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id   uuid REFERENCES messages (id) ON DELETE CASCADE,
    uploader_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    filename     text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       bytea NOT NULL,
    width        integer,
    height       integer,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT attachments_filename_length CHECK (char_length(filename) BETWEEN 1 AND 255),
    CONSTRAINT attachments_content_type_length CHECK (char_length(content_type) BETWEEN 1 AND 255),
    CONSTRAINT attachments_size_matches CHECK (size_bytes = octet_length(data)),
    CONSTRAINT attachments_sha256_length CHECK (octet_length(sha256) = 32),
    CONSTRAINT attachments_dimensions_positive
        CHECK ((width IS NULL OR width > 0) AND (height IS NULL OR height > 0))
);
CREATE INDEX attachments_message_idx ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_unattached_idx ON attachments (uploader_id, created_at) WHERE message_id IS NULL;
DROP TABLE file_chunks;
DROP TABLE files;
