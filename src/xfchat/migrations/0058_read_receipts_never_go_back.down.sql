-- xfchat: no data lost: only the highest read positions told to others after one went back (marked unread), which the code before this migration does not keep (it shows each read position as it is, as before).
ALTER TABLE read_states DROP COLUMN receipt_at, DROP COLUMN receipt_seq;
