-- A read receipt never goes back: what the others in a conversation are told, and
-- shown, of someone's reading is the highest read position they have reached.
--
-- An ack may move one's read position back (mark unread), and each move, back or
-- forward, was told to every participant as `read_state.updated` (up to 25, at up to
-- 600 acks a minute), the move back as false news: they had read further. Now an ack
-- is told to the others only when it goes above that highest position, a move that is
-- not tells the user's own connections alone, and `GET /api/channels/{id}/read-states`
-- shows the others at their highest (domain/messages.py acknowledge, read_states).
--
-- `receipt_seq` is the highest position as of the row's last ack (an ack stores the
-- highest before it: GREATEST(receipt_seq, last_read_seq)); the highest now is
-- GREATEST(receipt_seq, last_read_seq), since a send moves `last_read_seq` up to its
-- message without an ack (xf_write_messages, migration 0026, unchanged: the message
-- itself tells the others), and only a send or an ack above the highest moves it above
-- `receipt_seq`. So 0 (a constant default: the table is not rewritten) starts every row
-- at its read position. `receipt_at` is when the position first reached `receipt_seq`
-- (NULL: the row's `updated_at`, for a row no ack below its highest has touched).
ALTER TABLE read_states
    ADD COLUMN receipt_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN receipt_at timestamptz;
